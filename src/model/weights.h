// Typed views of a model's weights, pointing into the memory-mapped file. Copies: small
// norm vectors stored in a non-F32 type (decoded once), and Q8_0/Q4_0 matrices, repacked
// once for the integer kernels (their pages of the mapping are then released).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/aligned_buffer.h"
#include "format/tensor_type.h"

namespace h2o {

// A weight matrix of `rows` output features by `cols` input features, row-major in its
// storage type: row r starts at data + r * row_bytes. (GGUF ne = [cols, rows].)
// Q8_0 and Q4_0 matrices of a loaded model also have `packed`: the same values in the
// row-interleaved layout of format/packed_quant.h that the matrix products read.
struct Matrix {
  TensorType type = TensorType::F32;
  int rows = 0;
  int cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  const uint8_t* packed = nullptr;  // 64-byte aligned; null: matmul packs a copy per call

  const uint8_t* row(int r) const { return data + static_cast<size_t>(r) * row_bytes; }
  size_t bytes() const { return row_bytes * static_cast<size_t>(rows); }
};

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
