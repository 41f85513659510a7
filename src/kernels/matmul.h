// Matrix products of float activations with weights in their stored type, on the active
// SIMD target (dispatch.h), through the kernel table indexed by type:
//   F32, F16, BF16 weights: fused multiply-adds, F16/BF16 widened in registers;
//   quantized weights: packed in groups of 8 rows (format/packed_quant.h; Matrix::packed,
//     else a copy per call), activations quantized once per call to the type's kind (Q8_0
//     blocks or Q8_K super-blocks, format/types/int_dot.h), integer dots
//     (packed_gemm-inl.h); a target without the type's kernel runs its reference product.
// With n_tokens > 1 the kernels tile rows x tokens so a weight block is loaded once for
// several tokens. Each output element is computed by one thread in one fixed order, the
// same for every token count and thread count. H2O_SIMD=scalar runs matmul_reference().
#pragma once

#include <span>

#include "common/thread_pool.h"
#include "format/matrix.h"

namespace h2o {

struct KernelTable;

// out[t][r] = sum_c w[r][c] * x[t][c]   for t < n_tokens, r < w.rows.
// x: [n_tokens][w.cols], out: [n_tokens][w.rows].
void matmul(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool);

// The same with the kernels of a given target (kernels_for() in dispatch.h): tests and
// benchmarks compare targets in one process.
void matmul(const KernelTable& kernels, const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool);

// Several products of one input (a layer's q, k and v projections; gate and up):
// products[i].out = x times products[i].w, each the bits matmul() gives it. The
// activations are quantized once per kind for all of them, and one parallel region runs
// them all. Every matrix must have the input's width.
struct MatmulProduct {
  const Matrix* w = nullptr;
  float* out = nullptr;  // [n_tokens][w->rows]
};
void matmul_many(std::span<const MatmulProduct> products, const float* x, int n_tokens, ThreadPool& pool);
void matmul_many(const KernelTable& kernels, std::span<const MatmulProduct> products, const float* x, int n_tokens,
                 ThreadPool& pool);

// Decodes row `r` of `w` into dst[w.cols] (embedding lookup).
void matrix_row(const Matrix& w, int r, float* dst);

}  // namespace h2o
