// Typed views of a model's weights, pointing into the memory-mapped file. Copies: small
// norm vectors stored in a non-F32 type (decoded once), and Q8_0/Q4_0 matrices, repacked
// once for the integer kernels (their pages of the mapping are then released).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/aligned_buffer.h"
#include "format/matrix.h"

namespace h2o {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  Matrix wq;                         // [n_heads*head_dim][dim]
  Matrix wk;                         // [n_kv_heads*head_dim][dim]
  Matrix wv;                         // [n_kv_heads*head_dim][dim]
  Matrix wo;                         // [dim][n_heads*head_dim]
  const float* ffn_norm = nullptr;   // [dim]
  Matrix w_gate;                     // [hidden][dim]
  Matrix w_up;                       // [hidden][dim]
  Matrix w_down;                     // [dim][hidden]
};

struct ModelWeights {
  Matrix token_embd;                   // [vocab][dim]
  std::vector<LayerWeights> layers;    // [n_layers]
  const float* output_norm = nullptr;  // [dim]
  Matrix output;                       // [vocab][dim] (== token_embd when tied)
  // Storage for norm vectors that were not F32 in the file.
  std::vector<std::vector<float>> decoded;
  // Storage of the packed Q8_0/Q4_0 matrices, one after another (Matrix::packed points here).
  AlignedBuffer packed;

  size_t weight_bytes() const;  // bytes of all matrices as stored (tied output counted once)
};

}  // namespace h2o
