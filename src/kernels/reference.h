// Scalar references of the kernels. dot_f32_reference, axpy_f32_reference and
// matmul_reference are the engine's original portable code, run when H2O_SIMD=scalar; the
// *_lanes references restate, one value at a time, the exact summation order of the SIMD
// kernels so that tests can compare them bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/thread_pool.h"
#include "format/matrix.h"

namespace h2o {

// sum a[i] * b[i] in eight lanes (lane i % 8, multiply then add), lanes combined as
// ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)), then the n % 8 tail added in order.
float dot_f32_reference(const float* a, const float* b, size_t n);

// y[i] += a * x[i]
void axpy_f32_reference(float a, const float* x, float* y, size_t n);

// The gathered-row forms (KernelTable::dot_rows_f32, axpy_rows_f32): the calls above in a loop.
void dot_rows_f32_reference(const float* q, const float* rows, const uint32_t* idx, size_t m, size_t n, float* out);
void axpy_rows_f32_reference(const float* p, const float* rows, const uint32_t* idx, size_t m, size_t n, float* y);

// out[t][r] = dot_f32_reference(row r decoded to float, x[t]); rows split over the pool.
void matmul_reference(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool);

// The float kernels' order: lane i % 16 accumulates fma(w[i], x[i], lane); the 16 lanes are
// summed by halving (lane j += lane j + 8, then j + 4, j + 2, j + 1).
float dot_f32_fma16_lanes(const float* w, const float* x, size_t n);

// quantize_row(Q8_0) of n floats (a multiple of 32), split into values qs[n], widened
// scales d[n / 32] and the sums of each block's values sum[n / 32].
void quantize_q8_reference(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum);

// The quantized kernels' order, for one weight row of `cols` values (as stored in the
// file) against Q8_0 activations (qs, d): acc = 0; for each block b in order,
// acc = acc + float(p_b) * (d_w * d[b]) (no fusing), p_b the exact int32 sum of the
// block's 32 products.
float dot_q8_0_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols);
float dot_q4_0_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols);

// The k-quant kernels' order (simd_kquant.cpp), for one Q4_K / Q6_K row of `cols` values
// (a multiple of 256) against Q8_0 activations (qs, d, block sums sum). Activation block
// j = 8 * i + k (32 values) meets super-block i's 32 values k. Eight float lanes
// lane[k] = 0; for each super-block i in order, for each k < 8 (no fusing):
//   Q4_K: p_k = sum q * a (q the 4-bit values 0..15, exact int32),
//         ds_k = d * float(sc_k), dm_k = dmin * float(m_k)   (6-bit scale and min),
//         lane[k] = lane[k] + float(p_k) * (ds_k * d[j]);
//         lane[k] = lane[k] - float(sum[j]) * (dm_k * d[j]);
//   Q6_K: p_k = sc[2k] * sum_{l<16} (q_l - 32) * a_l + sc[2k+1] * sum_{l>=16} (q_l - 32) * a_l
//         (q the 6-bit values 0..63, sc the int8 scales of the two 16-value halves; exact
//         int32), lane[k] = lane[k] + float(p_k) * (d * d[j]);
// then the halving sum: lane[k] += lane[k + 4] (k < 4), lane[k] += lane[k + 2] (k < 2),
// result lane[0] + lane[1].
float dot_q4_k_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, const int32_t* sum, size_t cols);
float dot_q6_k_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols);

}  // namespace h2o
