// Q5_0, 22 bytes per 32 values (ggml block_q5_0):
//   [0..2)  d   fp16
//   [2..6)  qh  the values' fifth bits: bit j of the little-endian u32 is value j's
//   [6..22) qs  low four bits: value j < 16 in the low nibble of qs[j], j + 16 in the high
//   x = (q - 16) * d, q in [0, 31]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 22;

uint32_t high_bits(const uint8_t* b) {
  uint32_t h = 0;
  std::memcpy(&h, b, 4);  // little-endian on every target this builds for
  return h;
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src);
    const uint32_t h = high_bits(src + 2);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (src[6 + j] & 0xF) | static_cast<int>(((h >> j) << 4) & 0x10);
      const int q1 = (src[6 + j] >> 4) | static_cast<int>((h >> (j + 12)) & 0x10);
      dst[j] = static_cast<float>(q0 - 16) * d;
      dst[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

// ggml's quantize_row_q5_0_ref: as Q4_0 with 32 levels, d = max / -16.
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_io::put_f16(dst, d);
    uint32_t h = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(src[j] * id + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(src[j + 16] * id + 16.5f)));
      dst[6 + j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      h |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      h |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(dst + 2, &h, 4);
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  const uint32_t h = high_bits(b + 2);
  for (int j = 0; j < 16; ++j) {
    f.code[j] = static_cast<uint8_t>((b[6 + j] & 0xF) | (((h >> j) & 1) << 4));
    f.code[j + 16] = static_cast<uint8_t>((b[6 + j] >> 4) | (((h >> (j + 16)) & 1) << 4));
  }
}

}  // namespace

const TypeInfo kQ5_0Type{TensorType::Q5_0, "Q5_0", 32, kBytes, dequantize, quantize, fields, kQ5_0Format};

}  // namespace h2o
