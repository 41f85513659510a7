// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/types/int_dot.h"

#include <cmath>
#include <cstring>

#include "format/quantize_k.h"
#include "format/tensor_type.h"
#include "format/types/types.h"

namespace h2o {
namespace {

int32_t value_of(const IntFormat& f, uint8_t code) {
  return f.nonlinear ? int32_t{kIq4Values[code & 0xF]} : int32_t{code} - f.offset;
}

float dot_blocks32(const TypeInfo& t, const uint8_t* w_row, const Q8Activations& a, size_t cols) {
  const IntFormat& f = t.format;
  BlockFields bf;
  float acc = 0.0f;
  for (size_t b = 0; b < cols / 32; ++b) {
    t.fields(w_row + b * t.block_bytes, bf);
    int32_t p = 0;
    for (size_t k = 0; k < 32; ++k) p += value_of(f, bf.code[k]) * int32_t{a.qs[32 * b + k]};
    acc = acc + static_cast<float>(p) * (fp16_to_fp32(bf.d) * a.d[b]);
    if (f.has_min) acc = acc + static_cast<float>(a.sum[b]) * (fp16_to_fp32(bf.dmin) * a.d[b]);
  }
  return acc;
}

float dot_super256(const TypeInfo& t, const uint8_t* w_row, const Q8Activations& a, size_t cols) {
  const IntFormat& f = t.format;
  const auto sub = static_cast<size_t>(f.sub);
  BlockFields bf;
  float acc = 0.0f;
  for (size_t i = 0; i < cols / 256; ++i) {
    t.fields(w_row + i * t.block_bytes, bf);
    const int8_t* x = a.qs + 256 * i;
    int32_t P = 0, M = 0;
    for (size_t j = 0; j < 256 / sub; ++j) {
      int32_t s = 0;
      for (size_t k = j * sub; k < (j + 1) * sub; ++k) s += value_of(f, bf.code[k]) * int32_t{x[k]};
      P += int32_t{bf.scale[j]} * s;
      if (f.has_min) {
        const int16_t asum = sub == 16 ? a.sum16[16 * i + j] : a.sum32[8 * i + j];
        M += int32_t{bf.min[j]} * int32_t{asum};
      }
    }
    acc = acc + static_cast<float>(P) * (fp16_to_fp32(bf.d) * a.d[i]);
    if (f.has_min) acc = acc - static_cast<float>(M) * (fp16_to_fp32(bf.dmin) * a.d[i]);
  }
  return acc;
}

}  // namespace

void quantize_q8_0_reference(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum) {
  uint8_t block[34];
  for (size_t b = 0; b < n / 32; ++b) {
    kQ8_0Type.quantize(x + b * 32, block, 32);  // no finiteness check: activations may hold NaN
    d[b] = fp16_to_fp32(static_cast<uint16_t>(block[0] | (block[1] << 8)));
    std::memcpy(qs + b * 32, block + 2, 32);
    sum[b] = 0;
    for (size_t k = 0; k < 32; ++k) sum[b] += qs[b * 32 + k];
  }
}

void quantize_q8_k_reference(const float* x, size_t n, int8_t* qs, float* d, int16_t* sum16, int16_t* sum32) {
  for (size_t i = 0; i < n / 256; ++i, x += 256, qs += 256) {
    float amax = 0.0f, max = 0.0f;
    for (size_t j = 0; j < 256; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      d[i] = 0.0f;
      std::memset(qs, 0, 256);
    } else {
      const float iscale = -127.0f / max;
      for (size_t j = 0; j < 256; ++j) {
        const int v = nearest_int(iscale * x[j]);
        qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
      }
      d[i] = 1.0f / iscale;
    }
    for (size_t j = 0; j < 16; ++j) {
      int s = 0;
      for (size_t k = 0; k < 16; ++k) s += qs[16 * j + k];
      sum16[16 * i + j] = static_cast<int16_t>(s);
    }
    for (size_t j = 0; j < 8; ++j) sum32[8 * i + j] = static_cast<int16_t>(sum16[16 * i + 2 * j] + sum16[16 * i + 2 * j + 1]);
  }
}

float dot_reference(const TypeInfo& type, const uint8_t* w_row, const Q8Activations& a, size_t cols) {
  return type.format.act == ActKind::Q8_K ? dot_super256(type, w_row, a, cols) : dot_blocks32(type, w_row, a, cols);
}

}  // namespace h2o
