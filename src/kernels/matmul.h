// Matrix products of float activations with weights in their stored type.
// This is the portable path: each output element is one float dot product with a fixed
// summation order (dot_f32), computed by exactly one thread, so results are independent
// of the thread count. Quantized rows are decoded to float first.
#pragma once

#include "common/thread_pool.h"
#include "model/weights.h"

namespace h2o {

// out[t][r] = sum_c w[r][c] * x[t][c]   for t < n_tokens, r < w.rows.
// x: [n_tokens][w.cols], out: [n_tokens][w.rows].
void matmul(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool);

// Decodes row `r` of `w` into dst[w.cols] (embedding lookup).
void matrix_row(const Matrix& w, int r, float* dst);

}  // namespace h2o
