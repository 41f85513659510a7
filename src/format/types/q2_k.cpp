// Q2_K, 84 bytes per 256 values (ggml block_q2_K):
//   [0..16)  scales  sub-block j (16 values): scale in the low nibble, min in the high
//   [16..80) qs      2-bit values: value e at bits 2·(e%128/32) of qs[32·(e/128) + e%32]
//   [80..82) d       fp16      [82..84) dmin  fp16   (the super-scales come last)
//   x = d * scale_j * q - dmin * min_j, q in [0, 3], j = e / 16
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

constexpr size_t kBytes = 84;

int code_at(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3; }

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src + 80), dmin = block_io::f16(src + 82);
    for (int e = 0; e < 256; ++e) {
      const uint8_t sc = src[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
      dst[e] = dl * static_cast<float>(code_at(src + 16, e)) - ml;
    }
  }
}

// ggml's quantize_row_q2_K_ref: per sub-block of 16 an affine fit to 4 levels (|x| weights,
// absolute error), 4-bit scales and mins of fp16 super-scales, requantize.
void quantize_block(const float* x, uint8_t* y) {
  uint8_t L[256];
  float scales[16], mins[16];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    float w[16];
    for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_affine(x + 16 * j, w, 16, 3, -0.5f, 0.1f, 15, true, L + 16 * j, &mins[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* sc = y;
  if (max_scale > 0.0f) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    block_io::put_f16(y + 80, max_scale / 15.0f);
  } else {
    std::memset(sc, 0, 16);
    block_io::put_f16(y + 80, 0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (nearest_int(iscale * mins[j]) << 4));
    block_io::put_f16(y + 82, max_min / 15.0f);
  } else {
    block_io::put_f16(y + 82, 0.0f);
  }
  const float d = block_io::f16(y + 80), dmin = block_io::f16(y + 82);
  for (int j = 0; j < 16; ++j) {
    const float dj = d * static_cast<float>(sc[j] & 0xF);
    if (dj == 0.0f) continue;
    const float dm = dmin * static_cast<float>(sc[j] >> 4);
    for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + l] + dm) / dj), 0, 3));
  }
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = L + 128 * h + l;
      y[16 + 32 * h + l] = static_cast<uint8_t>(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
    }
  }
}

void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b) quantize_block(src + 256 * b, dst + kBytes * b);
}

void fields(const uint8_t* b, BlockFields& f) {
  for (int j = 0; j < 16; ++j) {
    f.scale[j] = static_cast<int8_t>(b[j] & 0xF);
    f.min[j] = b[j] >> 4;
  }
  for (int e = 0; e < 256; ++e) f.code[e] = static_cast<uint8_t>(code_at(b + 16, e));
  f.d = block_io::u16(b + 80);
  f.dmin = block_io::u16(b + 82);
}

}  // namespace

const TypeInfo kQ2_KType{TensorType::Q2_K, "Q2_K", 256, kBytes, dequantize, quantize, fields, kQ2_KFormat};

}  // namespace h2o
