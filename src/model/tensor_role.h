// The roles a weight tensor can play in a decoder-only transformer. Architectures map
// roles to file names (model/architecture.h); the forward pass reads weights by role.
#pragma once

#include <cstdint>
#include <string_view>

namespace h2o {

// Model-wide tensors.
enum class ModelRole : uint8_t {
  TokenEmbd,       // [vocab][embed_dim] token embedding
  PosEmbd,         // [n_positions][dim] learned absolute positions (OPT)
  ProjectIn,       // [dim][embed_dim] embedding -> residual width (OPT, when they differ)
  ProjectOut,      // [embed_dim][dim] residual width -> embedding width before the head
  OutputNorm,      // [dim] final norm weight
  OutputNormBias,  // [dim] final norm bias (LayerNorm)
  Output,          // [vocab][embed_dim] the head (the token embedding when tied)
  OutputBias,      // [vocab]
  RopeFreqs,       // [n_rot/2] Llama 3.1+ per-pair frequency divisors
  kCount
};

// Per-layer tensors (blk.N.*).
enum class LayerRole : uint8_t {
  AttnNorm,
  AttnNormBias,
  AttnQ,  // [n_heads*head_dim][dim]
  AttnK,  // [n_kv_heads*head_dim][dim]
  AttnV,  // [n_kv_heads*head_dim][dim]
  AttnQBias,
  AttnKBias,
  AttnVBias,
  AttnQKV,      // [(n_heads+2*n_kv_heads)*head_dim][dim]: Q rows, then K, then V
  AttnQKVBias,  // [(n_heads+2*n_kv_heads)*head_dim]
  AttnOut,      // [dim][n_heads*head_dim]
  AttnOutBias,
  FfnNorm,
  FfnNormBias,
  FfnGate,  // [hidden][dim]
  FfnUp,    // [hidden][dim]
  FfnDown,  // [dim][hidden]
  FfnGateBias,
  FfnUpBias,
  FfnDownBias,
  kCount
};

inline constexpr size_t kModelRoles = static_cast<size_t>(ModelRole::kCount);
inline constexpr size_t kLayerRoles = static_cast<size_t>(LayerRole::kCount);

}  // namespace h2o
