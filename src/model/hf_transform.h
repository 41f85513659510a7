// The row reorderings an architecture asks for when it reads a Hugging Face tensor
// (model/architecture.h, HfTransform): the layout HF stores differs from the one the
// engine computes with (GGUF's), so such tensors are copied once at load, permuted.
#pragma once

#include <cstdint>
#include <vector>

#include "model/architecture.h"

namespace h2o {

// For a tensor of `n_rows` rows (a bias counts one row per value): order[i] is the HF row
// that becomes row i. Throws h2o::Error if n_rows does not fit the transform's shape.
//   RopePermuteQ/K (model-families.md §2.7): within each head of head_dim rows, row 2i + s
//     takes HF row s * head_dim/2 + i (rotate-half -> interleaved pairs), for n_heads
//     (Q) or n_kv_heads (K) heads.
//   NeoxQkv (§1.5): row j*dim + h*head_dim + r takes HF row 3*head_dim*h + j*head_dim + r
//     (per-head [q|k|v] -> [all Q; all K; all V]).
std::vector<uint32_t> hf_row_order(HfTransform t, const ModelConfig& c, int64_t n_rows);

}  // namespace h2o
