// The kernels of one SIMD target as plain function pointers. dispatch.cpp fills one table
// per target this CPU runs from Highway's per-target tables (simd_float.cpp,
// simd_quant.cpp); matmul.cpp and ops.cpp call through the active one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/tensor_type.h"
#include "format/types/int_dot.h"

namespace h2o {

// Tokens per tile of GemmArgs::tiles.
constexpr size_t kActTile = 8;

// Where token t's blocks lie in GemmArgs::tiles (n_tokens tokens of `blocks` blocks each):
// its block b is the tiles' block first + b * width. The one statement of the layout, for
// the code that writes the tiles and the kernels that read them.
struct ActTilePlace {
  size_t first;  // index of the token's block 0
  size_t width;  // tokens in its tile: the step from one of its blocks to the next
};
constexpr ActTilePlace act_tile_place(size_t n_tokens, size_t blocks, size_t t) {
  const size_t start = t / kActTile * kActTile;
  const size_t width = n_tokens - start < kActTile ? n_tokens - start : kActTile;
  return {start * blocks + (t - start), width};
}

// One call computes out[t * out_stride + r] = dot(row r of w, activation row t)
// for r in [row_begin, row_end) and t < n_tokens.
struct GemmArgs {
  const uint8_t* w = nullptr;  // row r starts at w + r * row_bytes, in the weight type
  size_t row_bytes = 0;        // (quantized types: w is packed, group g at w + g * group_bytes)
  size_t group_bytes = 0;
  size_t cols = 0;
  const float* x = nullptr;  // [n_tokens][cols] float activations (F32/F16/BF16 weights)
  // Quantized types: activations of the type's kind (format/types/int_dot.h) for every
  // token, in tiles of kActTile tokens, so that a kernel reaches every token of a tile
  // from one pointer at fixed offsets (no address register per token). A block is the
  // kind's scale block (32 values, Q8_0; 256, Q8_K); tile k holds tokens kActTile * k ..
  // (w = min(kActTile, n_tokens - kActTile * k) of them) from block kActTile * k *
  // (cols / block) on, block b of its token j being the tile's block b * w + j: its values
  // at qs + block * that index, its scale at d + that index, its sums likewise (sum: one
  // per block; sum16 and sum32: 16 and 8 per block).
  Q8Activations tiles;
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
  // In-place softmax over n >= 1 values: softmax_f32_reference's bits (reference.h).
  void (*softmax_f32)(float* x, size_t n) = nullptr;
  // gate[i] = silu(gate[i]) * up[i]: swiglu_f32_reference's bits.
  void (*swiglu_f32)(float* gate, const float* up, size_t n) = nullptr;
  // Activations for the quantized products (format/types/int_dot.h), the same bits as
  // quantize_q8_0_reference / quantize_q8_k_reference: n (a multiple of 32) floats ->
  // Q8_0 values qs[n], scales d[n / 32] and block sums sum[n / 32]; n (a multiple of 256)
  // floats -> Q8_K values qs[n], scales d[n / 256], sums sum16[n / 16], sum32[n / 32].
  void (*quantize_q8)(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum) = nullptr;
  void (*quantize_q8k)(const float* x, size_t n, int8_t* qs, float* d, int16_t* sum16, int16_t* sum32) = nullptr;

  // Matrix products indexed by the weight type's slot (type_slot(), format/tensor_type.h):
  //   F32, F16, BF16: float activations, 16 lanes of fused multiply-adds, halving sum
  //     (dot_f32_fma16_lanes in reference.h); any row_begin;
  //   quantized types: weights packed (format/packed_quant.h), activations of the type's
  //     kind in xq, dot_reference's order bit for bit; row_begin a multiple of 8.
  // A null entry: matmul() runs the type's reference (dot_reference, row by row on the
  // weights as stored), so every type is correct on every target.
  GemmFn gemm[kTypeSlots] = {};
};

// Fill the SIMD entries of `table` with the kernels compiled for Highway target
// `hwy_target` (one bit of HWY_TARGETS that this CPU supports).
void fill_float_kernels(int64_t hwy_target, KernelTable& table);  // simd_float.cpp
void fill_quant_kernels(int64_t hwy_target, KernelTable& table);  // simd_quant.cpp

}  // namespace h2o
