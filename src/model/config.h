// Hyper-parameters of a decoder-only transformer, read by an architecture
// (model/architectures/*) from GGUF metadata, a llama2.c header or an HF config.json.
// Generic fields only: which of them an architecture uses is its own business.
#pragma once

#include <string>
#include <vector>

#include "kernels/rope.h"
#include "kv/kv_shape.h"

namespace h2o {

enum class NormKind { Rms, Layer };
enum class Activation { SiluGated, GeluErf, GeluTanh, Relu };

struct ModelConfig {
  std::string arch = "llama";  // the architecture's registry name
  int dim = 0;                 // residual width
  int hidden_dim = 0;          // feed-forward width
  int n_layers = 0;
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads (GQA when < n_heads)
  int head_dim = 0;        // dim / n_heads unless the file says otherwise
  int vocab_size = 0;      // rows of the token embedding
  int embed_dim = 0;       // width of the token embedding (== dim unless projected, OPT)
  int context_length = 0;  // trained context: positions are < context_length

  NormKind norm = NormKind::Rms;
  float norm_eps = 1e-5f;
  Activation activation = Activation::SiluGated;
  bool parallel_residual = false;  // x' = x + attn(norm1 x) + ffn(norm2 x)  (GPT-NeoX)
  bool norm_after = false;         // post-LayerNorm blocks (OPT-350m)
  bool tied_head = false;          // the head is the token embedding even if the file has one

  // Rotary embeddings; rope_dim == 0: none (learned positions).
  RopeStyle rope_style = RopeStyle::Normal;
  int rope_dim = 0;          // dimensions rotated per head (< head_dim: partial rotary)
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / linear scaling factor
  // Per-pair frequency divisors computed from the config (Hugging Face rope_type llama3);
  // a GGUF file carries them as the rope_freqs.weight tensor instead. Empty: none.
  std::vector<float> rope_factors;
  int position_offset = 0;       // learned positions: row of position p is p + offset (OPT: 2)

  int kv_dim() const { return n_kv_heads * head_dim; }
  int q_dim() const { return n_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }
  AttentionShape attention_shape() const { return {n_layers, n_heads, n_kv_heads, head_dim, context_length}; }
};

}  // namespace h2o
