// Scalar references of the KV storage types (shared/spec/kv-policies.md, "Storage
// types"): the encoders the cache stores rows with, the exact dequantisation, the per-rank
// key rotation of `cache` positions, and the kernels of kv_kernels.h written one value at
// a time (H2O_SIMD=scalar runs these; tests compare the SIMD kernels with them bit for bit).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kv_kernels.h"

namespace h2o {

// f16: IEEE half, round to nearest even.
void encode_kv_row_f16(const float* x, size_t n, uint16_t* out);
// q8: d = fp16(max |x| / 127) (round to nearest even), q[i] = round_half_even(x[i] / d)
// clamped to [-127, 127], in fp32; d = 0 stores zeros. scale receives d's fp16 bits.
void encode_kv_row_q8(const float* x, size_t n, int8_t* out, uint16_t* scale);
// Exact widening: out[i] = half(row[i]); out[i] = half(scale) * q[i].
void decode_kv_row_f16(const uint16_t* row, size_t n, float* out);
void decode_kv_row_q8(const int8_t* row, uint16_t scale, size_t n, float* out);

// One rank's row of KvRopeRows from RopeTable::angles() output (cos_sin[2i], cos_sin[2i+1]
// = cos, sin of pair i): C[n_rot] then S[n_rot] into out[2 * n_rot].
void kv_rope_row(const float* cos_sin, size_t n_rot, bool neox, float* out);
// k'[i] = k[i] * C[i] + k[partner(i)] * S[i] for i < n_rot, k'[i] = k[i] beyond (see KvRopeRows).
void rotate_kv_row(const float* k, const float* cs, size_t n, size_t n_rot, bool neox, float* out);

void dot_rows_f16_reference(const float* q, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* out);
void dot_rows_q8_reference(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                           size_t n, float* out);
void axpy_rows_f16_reference(const float* p, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* y);
void axpy_rows_q8_reference(const float* p, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                            size_t n, float* y);
// The multi-query entries: the one-query references, query by query.
void dot_queries_f16_reference(const float* q, size_t q_stride, size_t nq, const uint16_t* rows, const uint32_t* idx,
                               size_t m, size_t n, float* out, size_t out_stride);
void dot_queries_q8_reference(const float* q, size_t q_stride, size_t nq, const int8_t* rows, const uint16_t* scale,
                              const uint32_t* idx, size_t m, size_t n, float* out, size_t out_stride);
void axpy_queries_f16_reference(const float* const* p, size_t nq, const uint16_t* rows, const uint32_t* idx, size_t m,
                                size_t n, float* const* y);
void axpy_queries_q8_reference(const float* const* p, size_t nq, const int8_t* rows, const uint16_t* scale,
                               const uint32_t* idx, size_t m, size_t n, float* const* y);
void dot_rows_rope_f32_reference(const float* q, const float* rows, const uint32_t* idx, const uint32_t* rank, size_t m,
                                 size_t n, const KvRopeRows& rope, float* scratch, float* out);
void dot_rows_rope_f16_reference(const float* q, const uint16_t* rows, const uint32_t* idx, const uint32_t* rank,
                                 size_t m, size_t n, const KvRopeRows& rope, float* scratch, float* out);
void dot_rows_rope_q8_reference(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx,
                                const uint32_t* rank, size_t m, size_t n, const KvRopeRows& rope, float* scratch,
                                float* out);
// The one-victim eviction scan (KvKernelTable::lowest_outside_recent). For a non-negative,
// non-NaN float the bits order like the value, so (score bits, position) as one 64-bit key
// orders the slots by score, then older position first, as the policies' removal order
// does; the protected slots are those at or beyond max position - recent + 1, which are
// the `recent` most recent exactly when that many lie there (counted).
int lowest_outside_recent_reference(const float* score, const int32_t* pos, size_t n, int recent);

// The table of these references (the `scalar` target).
KvKernelTable kv_reference_kernels();

}  // namespace h2o
