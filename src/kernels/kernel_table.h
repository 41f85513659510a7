// The kernels of one SIMD target as plain function pointers. dispatch.cpp fills one table
// per target this CPU runs from Highway's per-target tables (simd_float.cpp,
// simd_quant.cpp, simd_kquant.cpp); matmul.cpp and ops.cpp call through the active one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace h2o {

// Activations quantized to Q8_0 blocks of 32 (llama.cpp's vec_dot_type for Q8_0 and Q4_0
// weights), in two planes: qs[t][cols] int8 and d[t][cols / 32] float (the block's fp16
// scale, widened). Values and scales are exactly those of quantize_row(Q8_0).
// Also each block's sum of values, sum[t][cols / 32], which the packed kernels need (see
// format/packed_quant.h).
struct Q8Activations {
  const int8_t* qs = nullptr;
  const float* d = nullptr;
  const int32_t* sum = nullptr;
};

// One call computes out[t * out_stride + r] = dot(row r of w, activation row t)
// for r in [row_begin, row_end) and t < n_tokens.
struct GemmArgs {
  const uint8_t* w = nullptr;  // row r starts at w + r * row_bytes, in the weight type
  size_t row_bytes = 0;        // (Q8_0/Q4_0: w is packed, group g at w + g * group_bytes)
  size_t group_bytes = 0;
  size_t cols = 0;
  const float* x = nullptr;  // [n_tokens][cols] float activations (F32/F16/BF16 weights)
  Q8Activations xq;          // quantized activations (Q8_0/Q4_0/Q4_K/Q6_K weights)
  size_t n_tokens = 0;
  float* out = nullptr;
  size_t out_stride = 0;
};
using GemmFn = void (*)(const GemmArgs& args, size_t row_begin, size_t row_end);

struct KernelTable {
  const char* name = "";
  bool reference = false;  // the scalar reference: matmul() takes matmul_reference()

  // sum a[i] * b[i]: eight lanes, multiply then add, combined as dot_f32_reference does
  // (same bits on every target).
  float (*dot_f32)(const float* a, const float* b, size_t n) = nullptr;
  // y[i] += a * x[i] (same bits on every target).
  void (*axpy_f32)(float a, const float* x, float* y, size_t n) = nullptr;
  // Attention over gathered rows (row j at rows + idx[j] * n), one call per query instead
  // of one per slot: out[j] = dot_f32(q, row j) for j < m; and y += p[j] * row j for j in
  // order, each step rounding as axpy_f32 does. The same bits as those calls in a loop.
  void (*dot_rows_f32)(const float* q, const float* rows, const uint32_t* idx, size_t m, size_t n,
                       float* out) = nullptr;
  void (*axpy_rows_f32)(const float* p, const float* rows, const uint32_t* idx, size_t m, size_t n, float* y) = nullptr;
  // n (a multiple of 32) floats -> Q8_0 values qs[n], scales d[n / 32] and block sums
  // sum[n / 32].
  void (*quantize_q8)(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum) = nullptr;

  // Float activations: 16 lanes of fused multiply-adds, halving sum
  // (dot_f32_fma16_lanes in reference.h).
  GemmFn gemm_f32 = nullptr;
  GemmFn gemm_f16 = nullptr;
  GemmFn gemm_bf16 = nullptr;
  // Packed Q8_0 / Q4_0 weights (format/packed_quant.h) and Q8_0 activations: per block an
  // exact int32 sum, times (d_w * d_a), added to one float per output (dot_q8_0_q8_blocks,
  // dot_q4_0_q8_blocks in reference.h). row_begin is a multiple of 8.
  GemmFn gemm_q8_0 = nullptr;
  GemmFn gemm_q4_0 = nullptr;
  // Q4_K / Q6_K weights as stored (row r at w + r * row_bytes) and Q8_0 activations: per
  // 32 values an exact int32 sum, scaled in eight float lanes (dot_q4_k_q8_blocks,
  // dot_q6_k_q8_blocks in reference.h). Any row_begin.
  GemmFn gemm_q4_k = nullptr;
  GemmFn gemm_q6_k = nullptr;
};

// Fill the SIMD entries of `table` with the kernels compiled for Highway target
// `hwy_target` (one bit of HWY_TARGETS that this CPU supports).
void fill_float_kernels(int64_t hwy_target, KernelTable& table);   // simd_float.cpp
void fill_quant_kernels(int64_t hwy_target, KernelTable& table);   // simd_quant.cpp
void fill_kquant_kernels(int64_t hwy_target, KernelTable& table);  // simd_kquant.cpp

}  // namespace h2o
