// clang-format off
#include "common/strict_fp.h"  // first: see there
// clang-format on
#include "kernels/kv_reference.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "format/tensor_type.h"
#include "kernels/reference.h"

namespace h2o {

void encode_kv_row_f16(const float* x, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void encode_kv_row_q8(const float* x, size_t n, int8_t* out, uint16_t* scale) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t dh = fp32_to_fp16(amax / 127.0f);
  const float d = fp16_to_fp32(dh);
  *scale = dh;
  if (d == 0.0f) {
    std::memset(out, 0, n);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    // nearbyint rounds half to even in the default rounding mode. d may have rounded down,
    // so x / d can pass 127 by a little: clamped. A NaN (a broken model) stores 0.
    const float v = std::nearbyint(x[i] / d);
    out[i] = static_cast<int8_t>(v >= 127.0f ? 127.0f : v <= -127.0f ? -127.0f : v == v ? v : 0.0f);
  }
}

void decode_kv_row_f16(const uint16_t* row, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(row[i]);
}

void decode_kv_row_q8(const int8_t* row, uint16_t scale, size_t n, float* out) {
  const float d = fp16_to_fp32(scale);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(row[i]) * d;
}

void kv_rope_row(const float* cos_sin, size_t n_rot, bool neox, float* out) {
  float* c_row = out;
  float* s_row = out + n_rot;
  const size_t half = n_rot / 2;
  for (size_t i = 0; i < half; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const size_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    c_row[a] = c;
    s_row[a] = -s;
    c_row[b] = c;
    s_row[b] = s;
  }
}

void rotate_kv_row(const float* k, const float* cs, size_t n, size_t n_rot, bool neox, float* out) {
  const float* c_row = cs;
  const float* s_row = cs + n_rot;
  const size_t half = n_rot / 2;
  for (size_t i = 0; i < n_rot; ++i) {
    const size_t partner = neox ? (i < half ? i + half : i - half) : (i ^ 1);
    out[i] = k[i] * c_row[i] + k[partner] * s_row[i];
  }
  for (size_t i = n_rot; i < n; ++i) out[i] = k[i];
}

void dot_rows_f16_reference(const float* q, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* out) {
  std::vector<float> row(n);
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_f16(rows + idx[j] * n, n, row.data());
    out[j] = dot_f32_reference(q, row.data(), n);
  }
}

void dot_rows_q8_reference(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                           size_t n, float* out) {
  std::vector<float> row(n);
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_q8(rows + idx[j] * n, scale[idx[j]], n, row.data());
    out[j] = dot_f32_reference(q, row.data(), n);
  }
}

void axpy_rows_f16_reference(const float* p, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* y) {
  std::vector<float> row(n);
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_f16(rows + idx[j] * n, n, row.data());
    axpy_f32_reference(p[j], row.data(), y, n);
  }
}

void axpy_rows_q8_reference(const float* p, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m,
                            size_t n, float* y) {
  std::vector<float> row(n);
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_q8(rows + idx[j] * n, scale[idx[j]], n, row.data());
    axpy_f32_reference(p[j], row.data(), y, n);
  }
}

void dot_queries_f16_reference(const float* q, size_t q_stride, size_t nq, const uint16_t* rows, const uint32_t* idx,
                               size_t m, size_t n, float* out, size_t out_stride) {
  for (size_t t = 0; t < nq; ++t) dot_rows_f16_reference(q + t * q_stride, rows, idx, m, n, out + t * out_stride);
}

void dot_queries_q8_reference(const float* q, size_t q_stride, size_t nq, const int8_t* rows, const uint16_t* scale,
                              const uint32_t* idx, size_t m, size_t n, float* out, size_t out_stride) {
  for (size_t t = 0; t < nq; ++t) dot_rows_q8_reference(q + t * q_stride, rows, scale, idx, m, n, out + t * out_stride);
}

void axpy_queries_f16_reference(const float* const* p, size_t nq, const uint16_t* rows, const uint32_t* idx, size_t m,
                                size_t n, float* const* y) {
  for (size_t t = 0; t < nq; ++t) axpy_rows_f16_reference(p[t], rows, idx, m, n, y[t]);
}

void axpy_queries_q8_reference(const float* const* p, size_t nq, const int8_t* rows, const uint16_t* scale,
                               const uint32_t* idx, size_t m, size_t n, float* const* y) {
  for (size_t t = 0; t < nq; ++t) axpy_rows_q8_reference(p[t], rows, scale, idx, m, n, y[t]);
}

void dot_rows_rope_f32_reference(const float* q, const float* rows, const uint32_t* idx, const uint32_t* rank, size_t m,
                                 size_t n, const KvRopeRows& rope, float* scratch, float* out) {
  for (size_t j = 0; j < m; ++j) {
    rotate_kv_row(rows + idx[j] * n, rope.cs + rank[idx[j]] * 2 * rope.n_rot, n, rope.n_rot, rope.neox, scratch);
    out[j] = dot_f32_reference(q, scratch, n);
  }
}

void dot_rows_rope_f16_reference(const float* q, const uint16_t* rows, const uint32_t* idx, const uint32_t* rank,
                                 size_t m, size_t n, const KvRopeRows& rope, float* scratch, float* out) {
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_f16(rows + idx[j] * n, n, scratch);
    rotate_kv_row(scratch, rope.cs + rank[idx[j]] * 2 * rope.n_rot, n, rope.n_rot, rope.neox, scratch + n);
    out[j] = dot_f32_reference(q, scratch + n, n);
  }
}

void dot_rows_rope_q8_reference(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx,
                                const uint32_t* rank, size_t m, size_t n, const KvRopeRows& rope, float* scratch,
                                float* out) {
  for (size_t j = 0; j < m; ++j) {
    decode_kv_row_q8(rows + idx[j] * n, scale[idx[j]], n, scratch);
    rotate_kv_row(scratch, rope.cs + rank[idx[j]] * 2 * rope.n_rot, n, rope.n_rot, rope.neox, scratch + n);
    out[j] = dot_f32_reference(q, scratch + n, n);
  }
}

int lowest_outside_recent_reference(const float* score, const int32_t* pos, size_t n, int recent) {
  const size_t count = static_cast<size_t>(std::clamp<int64_t>(recent, 0, static_cast<int64_t>(n)));
  int64_t edge = std::numeric_limits<int64_t>::max();
  if (count > 0) {
    int32_t top = pos[0];
    for (size_t i = 1; i < n; ++i) top = std::max(top, pos[i]);
    edge = static_cast<int64_t>(top) - static_cast<int64_t>(count - 1);
  }
  uint64_t best = std::numeric_limits<uint64_t>::max();
  bool bad = false;
  size_t in_run = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(score[i]);
    bad = bad || bits > 0x7f800000u || pos[i] < 0;  // NaN or sign bit set; negative position
    if (pos[i] >= edge) {
      ++in_run;
    } else {
      best = std::min(best, static_cast<uint64_t>(bits) << 32 | static_cast<uint32_t>(pos[i]));
    }
  }
  if (bad || in_run != count || best == std::numeric_limits<uint64_t>::max()) return -1;
  const auto victim = static_cast<int32_t>(best & 0xffffffffu);
  for (size_t i = 0; i < n; ++i) {
    if (pos[i] == victim) return static_cast<int>(i);
  }
  return -1;
}

KvKernelTable kv_reference_kernels() {
  KvKernelTable t;
  t.name = "scalar";
  t.encode_row_q8 = &encode_kv_row_q8;
  t.dot_rows_f16 = &dot_rows_f16_reference;
  t.dot_rows_q8 = &dot_rows_q8_reference;
  t.axpy_rows_f16 = &axpy_rows_f16_reference;
  t.axpy_rows_q8 = &axpy_rows_q8_reference;
  t.dot_queries_f16 = &dot_queries_f16_reference;
  t.dot_queries_q8 = &dot_queries_q8_reference;
  t.axpy_queries_f16 = &axpy_queries_f16_reference;
  t.axpy_queries_q8 = &axpy_queries_q8_reference;
  t.dot_rows_rope_f32 = &dot_rows_rope_f32_reference;
  t.dot_rows_rope_f16 = &dot_rows_rope_f16_reference;
  t.dot_rows_rope_q8 = &dot_rows_rope_q8_reference;
  t.lowest_outside_recent = &lowest_outside_recent_reference;
  return t;
}

}  // namespace h2o
