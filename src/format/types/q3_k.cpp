// Q3_K, 110 bytes per 256 values (ggml block_q3_K):
//   [0..32)   hmask   value e's third bit: bit e/32 of hmask[e % 32]
//   [32..96)  qs      low 2 bits: value e at bits 2·(e%128/32) of qs[32·(e/128) + e%32]
//   [96..108) scales  sixteen 6-bit scales s_k (sub-blocks of 16), stored plus 32: the low
//                     nibble of byte k (k < 8) or the high nibble of byte k-8, and the top
//                     two bits at bits 2·(k/4) of byte 8 + k%4
//   [108..110) d      fp16
//   x = d * (s_k - 32) * (q - 4), q = low | third bit << 2 in [0, 7]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/quantize_k.h"
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 110;

int scale_at(const uint8_t* s, int k) {
  const int lo = k < 8 ? s[k] & 0xF : s[k - 8] >> 4;
  const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}
int low_at(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3; }
int high_at(const uint8_t* hmask, int e) { return (hmask[e % 32] >> (e / 32)) & 1; }

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src + 108);
    for (int e = 0; e < 256; ++e) {
      const float dl = d * static_cast<float>(scale_at(src + 96, e / 16));
      dst[e] = dl * static_cast<float>(low_at(src + 32, e) - (high_at(src, e) ? 0 : 4));
    }
  }
}

// ggml's quantize_row_q3_K_ref: per sub-block of 16 a symmetric fit to 8 levels
// (fit_q3), 6-bit signed scales of one fp16 d (the largest-magnitude scale maps to -32),
// requantize.
void quantize_block(const float* x, uint8_t* y) {
  uint8_t L[256];
  float scales[16];
  float max_scale = 0.0f, amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_q3(x + 16 * j, 16, 4, L + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  uint8_t* s = y + 96;
  std::memset(s, 0, 12);
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int l = std::clamp<int>(static_cast<int8_t>(nearest_int(iscale * scales[j])), -32, 31) + 32;
      if (j < 8) {
        s[j] = static_cast<uint8_t>(l & 0xF);
      } else {
        s[j - 8] = static_cast<uint8_t>(s[j - 8] | ((l & 0xF) << 4));
      }
      s[8 + j % 4] = static_cast<uint8_t>(s[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
    }
    block_io::put_f16(y + 108, 1.0f / iscale);
  } else {
    block_io::put_f16(y + 108, 0.0f);
  }
  const float d = block_io::f16(y + 108);
  for (int j = 0; j < 16; ++j) {
    const float dj = d * static_cast<float>(scale_at(s, j));
    if (dj == 0.0f) continue;
    for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int(x[16 * j + l] / dj), -4, 3) + 4);
  }
  std::memset(y, 0, 32);  // hmask
  for (int e = 0; e < 256; ++e) {
    if (L[e] > 3) {
      y[e % 32] = static_cast<uint8_t>(y[e % 32] | (1 << (e / 32)));
      L[e] = static_cast<uint8_t>(L[e] - 4);
    }
  }
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = L + 128 * h + l;
      y[32 + 32 * h + l] = static_cast<uint8_t>(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
    }
  }
}

void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b) quantize_block(src + 256 * b, dst + kBytes * b);
}

void fields(const uint8_t* b, BlockFields& f) {
  for (int k = 0; k < 16; ++k) f.scale[k] = static_cast<int8_t>(scale_at(b + 96, k));
  for (int e = 0; e < 256; ++e) f.code[e] = static_cast<uint8_t>(low_at(b + 32, e) | (high_at(b, e) << 2));
  f.d = block_io::u16(b + 108);
}

}  // namespace

const TypeInfo kQ3_KType{TensorType::Q3_K, "Q3_K", 256, kBytes, dequantize, quantize, fields, kQ3_KFormat};

}  // namespace h2o
