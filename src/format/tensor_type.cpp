#include "format/tensor_type.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "format/quantize_k.h"

namespace h2o {
namespace {

constexpr std::array<TypeTraits, 7> kTraits{{
    {TensorType::F32, "F32", 1, 4},
    {TensorType::F16, "F16", 1, 2},
    {TensorType::Q4_0, "Q4_0", 32, 18},
    {TensorType::Q8_0, "Q8_0", 32, 34},
    {TensorType::Q4_K, "Q4_K", 256, 144},
    {TensorType::Q6_K, "Q6_K", 256, 210},
    {TensorType::BF16, "BF16", 1, 2},
}};

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

void dequant_q4_k_block(const uint8_t* b, float* y) {
  const float d = fp16_to_fp32(load_u16(b));
  const float dmin = fp16_to_fp32(load_u16(b + 2));
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    uint8_t sc = 0, m = 0;
    q4_k_scale_min(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    q4_k_scale_min(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

void dequant_q6_k_block(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = fp16_to_fp32(load_u16(b + 208));
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is + 0] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

void q4_k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

std::optional<TypeTraits> type_traits(uint32_t id) {
  for (const auto& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return t;
  }
  return std::nullopt;
}

std::string type_name(uint32_t id) {
  if (auto t = type_traits(id)) return std::string(t->name);
  return "type " + std::to_string(id);
}

const TypeTraits& traits(TensorType t) {
  for (const auto& tr : kTraits) {
    if (tr.type == t) return tr;
  }
  fail("unknown tensor type {}", static_cast<uint32_t>(t));
}

size_t row_bytes(TensorType t, size_t n) {
  const auto& tr = traits(t);
  return n / tr.block_elems * tr.block_bytes;
}

// IEEE half conversion, exact for every value (same results as ggml's fp16 tables).
float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits = 0;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 0x1F) {
    // Inf stays inf; NaN keeps its payload and comes out quiet, as F16C's vcvtph2ps and
    // ggml's portable fallback (which passes the value through a float multiply) do.
    bits = sign | 0x7F800000u | mant << 13 | (mant != 0 ? 0x00400000u : 0u);
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

uint16_t fp32_to_fp16(float f) {
  // Round to nearest even, as _cvtss_sh / ggml's fallback do.
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7FFFFFFF;
  if (absx > 0x7F800000) return static_cast<uint16_t>(sign | 0x7E00);  // NaN
  if (absx >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // overflow -> inf
  if (absx < 0x38800000) {  // subnormal half or zero
    const float a = std::bit_cast<float>(absx);
    const float scaled = a * 16777216.0f;  // 2^24: one half-subnormal ulp becomes 1
    const auto m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t mant_odd = (absx >> 13) & 1;
  const uint32_t rounded = absx + 0xFFF + mant_odd;
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000) >> 13));
}

float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

void dequantize_row(TensorType t, const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16:
      for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(p + 2 * i));
      return;
    case TensorType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(p + 2 * i));
      return;
    case TensorType::Q8_0:
      for (size_t b = 0; b < n / 32; ++b, p += 34) {
        const float d = fp16_to_fp32(load_u16(p));
        const auto* qs = reinterpret_cast<const int8_t*>(p + 2);
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = d * static_cast<float>(qs[j]);
      }
      return;
    case TensorType::Q4_0:
      for (size_t b = 0; b < n / 32; ++b, p += 18) {
        const float d = fp16_to_fp32(load_u16(p));
        const uint8_t* qs = p + 2;
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>((qs[j] & 0xF) - 8);
          dst[b * 32 + j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
        }
      }
      return;
    case TensorType::Q4_K:
      for (size_t b = 0; b < n / 256; ++b) dequant_q4_k_block(p + b * 144, dst + b * 256);
      return;
    case TensorType::Q6_K:
      for (size_t b = 0; b < n / 256; ++b) dequant_q6_k_block(p + b * 210, dst + b * 256);
      return;
  }
  fail("cannot decode tensor type {}", static_cast<uint32_t>(t));
}

void quantize_row(TensorType t, const float* src, void* dst, size_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16:
      for (size_t i = 0; i < n; ++i) store_u16(p + 2 * i, fp32_to_fp16(src[i]));
      return;
    case TensorType::BF16:
      for (size_t i = 0; i < n; ++i) store_u16(p + 2 * i, fp32_to_bf16(src[i]));
      return;
    case TensorType::Q8_0:  // ggml quantize_row_q8_0_ref
      for (size_t b = 0; b < n / 32; ++b, p += 34) {
        const float* x = src + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(p, fp32_to_fp16(d));
        for (int j = 0; j < 32; ++j) {
          p[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
        }
      }
      return;
    case TensorType::Q4_0:  // ggml quantize_row_q4_0_ref
      for (size_t b = 0; b < n / 32; ++b, p += 18) {
        const float* x = src + b * 32;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j) {
          if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
          }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(p, fp32_to_fp16(d));
        for (int j = 0; j < 16; ++j) {
          const auto q0 = static_cast<uint8_t>(std::min(15, static_cast<int>(x[j] * id + 8.5f)));
          const auto q1 =
              static_cast<uint8_t>(std::min(15, static_cast<int>(x[j + 16] * id + 8.5f)));
          p[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      }
      return;
    case TensorType::Q4_K:  // ggml quantize_row_q4_K_ref
      quantize_row_q4_k(src, p, n);
      return;
    case TensorType::Q6_K:  // ggml quantize_row_q6_K_ref
      quantize_row_q6_k(src, p, n);
      return;
  }
  fail("writing tensor type {} is not supported", type_name(static_cast<uint32_t>(t)));
}

}  // namespace h2o
