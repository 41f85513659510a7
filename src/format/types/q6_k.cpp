// Q6_K, 210 bytes per 256 values (ggml block_q6_K):
//   [0..128)   ql: low 4 bits       [128..192) qh: high 2 bits
//   [192..208) sixteen int8 sub-block scales (sub-blocks of 16)   [208..210) d fp16
//   Each half h of 128 values uses ql[64h..64h+64) and qh[32h..32h+32): for l < 32,
//   values l, l+32, l+64, l+96 of the half keep their low nibbles in ql[l] (low),
//   ql[l+32] (low), ql[l] (high), ql[l+32] (high), and their high bit pairs in bits
//   0-1, 2-3, 4-5, 6-7 of qh[l].
//   x = d * scale_j * (q - 32), j = e / 16, q in [0, 63]
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

constexpr size_t kBytes = 210;

int code_at(const uint8_t* b, int e) {
  const int h = e / 128, part = e % 128 / 32, l = e % 32;
  const uint8_t low = b[64 * h + 32 * (part % 2) + l];
  const int lo4 = part < 2 ? low & 0xF : low >> 4;
  return lo4 | (((b[128 + 32 * h + l] >> (2 * part)) & 3) << 4);
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src + 208);
    for (int e = 0; e < 256; ++e) {
      const auto sc = static_cast<int8_t>(src[192 + e / 16]);
      dst[e] = d * static_cast<float>(sc) * static_cast<float>(code_at(src, e) - 32);
    }
  }
}

// ggml's quantize_row_q6_K_ref: per sub-block of 16 a symmetric fit (fit_symmetric, 64
// levels), int8 scales of one fp16 d (the largest-magnitude scale maps to -128),
// requantize.
void quantize_block(const float* x, uint8_t* y) {
  uint8_t L[256];  // 0..63, i.e. q + 32
  float scales[16];
  float max_scale = 0.0f, max_abs = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric(x + 16 * j, 16, 32, L + 16 * j);
    if (std::fabs(scales[j]) > max_abs) {
      max_abs = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_abs < kGroupMaxEps) {  // all (near) zero: an all-zero block decodes to 0
    std::memset(y, 0, kBytes);
    return;
  }
  const float iscale = -128.0f / max_scale;
  block_io::put_f16(y + 208, 1.0f / iscale);
  auto* sc = reinterpret_cast<int8_t*>(y + 192);
  for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
  const float d = block_io::f16(y + 208);
  for (int j = 0; j < 16; ++j) {
    const float dj = d * static_cast<float>(sc[j]);
    if (dj == 0.0f) continue;
    for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int(x[16 * j + l] / dj), -32, 31) + 32);
  }
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = y + 64 * h;
    uint8_t* qh = y + 128 + 32 * h;
    const uint8_t* v = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
    }
  }
}

void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b) quantize_block(src + 256 * b, dst + kBytes * b);
}

void fields(const uint8_t* b, BlockFields& f) {
  for (int j = 0; j < 16; ++j) f.scale[j] = static_cast<int8_t>(b[192 + j]);
  for (int e = 0; e < 256; ++e) f.code[e] = static_cast<uint8_t>(code_at(b, e));
  f.d = block_io::u16(b + 208);
}

}  // namespace

const TypeInfo kQ6_KType{TensorType::Q6_K, "Q6_K", 256, kBytes, dequantize, quantize, fields, kQ6_KFormat};

}  // namespace h2o
