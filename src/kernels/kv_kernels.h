// Attention kernels over KV rows in their stored type (shared/spec/kv-policies.md,
// "Storage types" and "Positions"): a float query against gathered f16 / q8 rows, value
// rows added in f16 / q8, and, for `cache` positions, keys rotated by their rank on the
// fly. No kernel makes a dequantised copy of the cache: each row is widened in registers
// (or in a row-sized scratch when it is rotated).
//
// Every kernel is the f32 kernel (dot_f32 / axpy_f32, kernel_table.h) applied to the row
// dequantised exactly: an f16 value widens exactly, and a q8 value d * q (d an fp16 scale,
// |q| <= 127) needs at most 11 + 7 significant bits, so float(d) * float(q) is exact too.
// That fixes one order per kernel, restated by the scalar references in kv_reference.h,
// and the SIMD kernels (simd_kv.cpp) give the same bits on every target.
//
// Row layout: row i of f32 / f16 rows starts at rows + i * n (values), row i of q8 rows at
// rows + i * n (int8), with its scale in scale[i] (fp16 bits).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/dispatch.h"

namespace h2o {

// Per-rank rotations of key rows under `cache` positions, built by kv_rope_row(): for
// rank r, C = cs + r * 2 * n_rot and S = C + n_rot, and value i < n_rot of a key becomes
//   k'[i] = k[i] * C[i] + k[partner(i)] * S[i]
// with partner(i) = i ^ 1 (NORMAL RoPE: adjacent pairs) or i +- n_rot / 2 (NEOX); values
// i >= n_rot pass unchanged. These are RopeTable::rotate()'s products and sums (S holds
// -sin for the first value of a pair), so a key rotated here has the bits rotate() gives.
struct KvRopeRows {
  const float* cs = nullptr;  // [ranks][2][n_rot]
  size_t n_rot = 0;
  bool neox = false;
};

// Query rows the multi-query value kernels take at once.
constexpr size_t kKvMaxQueries = 4;

struct KvKernelTable {
  const char* name = "";

  // The q8 row encoder of encode_kv_row_q8() (kv_reference.h), same bits: every key and
  // value row the cache stores in q8 passes through it.
  void (*encode_row_q8)(const float* x, size_t n, int8_t* out, uint16_t* scale) = nullptr;

  // out[j] = dot_f32(q, row idx[j] dequantised), j < m.
  void (*dot_rows_f16)(const float* q, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n,
                       float* out) = nullptr;
  void (*dot_rows_q8)(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                      size_t n, float* out) = nullptr;
  // y += p[j] * (row idx[j] dequantised) for j in order, each step rounding as axpy_f32.
  void (*axpy_rows_f16)(const float* p, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n,
                        float* y) = nullptr;
  void (*axpy_rows_q8)(const float* p, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                       size_t n, float* y) = nullptr;
  // Several query rows over the same rows (a prefill chunk's rows share one head's keys
  // and values): query t at q + t * q_stride gets out[t * out_stride + j] = what
  // dot_rows_* gives it, j < m, for any nq >= 1 (many at once are cheaper per dot: from
  // eight on, rows are widened once into a tile for all of them); y[t] += p[t][j] * row
  // idx[j] what axpy_rows_* gives y[t], nq in 1..kKvMaxQueries. Same bits.
  void (*dot_queries_f16)(const float* q, size_t q_stride, size_t nq, const uint16_t* rows, const uint32_t* idx,
                          size_t m, size_t n, float* out, size_t out_stride) = nullptr;
  void (*dot_queries_q8)(const float* q, size_t q_stride, size_t nq, const int8_t* rows, const uint16_t* scale,
                         const uint32_t* idx, size_t m, size_t n, float* out, size_t out_stride) = nullptr;
  void (*axpy_queries_f16)(const float* const* p, size_t nq, const uint16_t* rows, const uint32_t* idx, size_t m,
                           size_t n, float* const* y) = nullptr;
  void (*axpy_queries_q8)(const float* const* p, size_t nq, const int8_t* rows, const uint16_t* scale,
                          const uint32_t* idx, size_t m, size_t n, float* const* y) = nullptr;
  // `cache` positions: row i has rank rank[i] (indexed like scale[i]); out[j] = dot_f32(q,
  // row idx[j] dequantised, then rotated by rank rank[idx[j]]'s rotation). scratch: 2 * n
  // floats. The rows are gathered in the order the caller gives (the attention passes them
  // in storage order, which the hardware prefetcher follows, not in rank order).
  void (*dot_rows_rope_f32)(const float* q, const float* rows, const uint32_t* idx, const uint32_t* rank, size_t m,
                            size_t n, const KvRopeRows& rope, float* scratch, float* out) = nullptr;
  void (*dot_rows_rope_f16)(const float* q, const uint16_t* rows, const uint32_t* idx, const uint32_t* rank, size_t m,
                            size_t n, const KvRopeRows& rope, float* scratch, float* out) = nullptr;
  void (*dot_rows_rope_q8)(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx,
                           const uint32_t* rank, size_t m, size_t n, const KvRopeRows& rope, float* scratch,
                           float* out) = nullptr;

  // Eviction's one-victim scan over a head's n slots (score[i], pos[i]): with the `recent`
  // highest positions protected, the unprotected slot of lowest (score, position), or -1
  // where the scan does not apply: the protected positions are not a run of consecutive
  // ones, a score is NaN or has its sign bit set, a position is negative, or no slot is
  // unprotected (lowest_outside_recent_reference states it; kv/policy.h uses it).
  int (*lowest_outside_recent)(const float* score, const int32_t* pos, size_t n, int recent) = nullptr;
};

// The KV kernels of an available SIMD target (dispatch.h); of the active one.
const KvKernelTable& kv_kernels_for(const SimdTarget& target);
const KvKernelTable& active_kv_kernels();

// Fills the SIMD entries for Highway target `hwy_target` (simd_kv.cpp).
void fill_kv_kernels(int64_t hwy_target, KvKernelTable& table);

}  // namespace h2o
