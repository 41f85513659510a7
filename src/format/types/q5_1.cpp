// Q5_1, 24 bytes per 32 values (ggml block_q5_1):
//   [0..2)  d   fp16      [2..4) m  fp16
//   [4..8)  qh  the values' fifth bits: bit j of the little-endian u32 is value j's
//   [8..24) qs  low four bits: value j < 16 in the low nibble of qs[j], j + 16 in the high
//   x = q * d + m, q in [0, 31]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <cfloat>
#include <cstring>

#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 24;

uint32_t high_bits(const uint8_t* b) {
  uint32_t h = 0;
  std::memcpy(&h, b, 4);
  return h;
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src), m = block_io::f16(src + 2);
    const uint32_t h = high_bits(src + 4);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (src[8 + j] & 0xF) | static_cast<int>(((h >> j) << 4) & 0x10);
      const int q1 = (src[8 + j] >> 4) | static_cast<int>((h >> (j + 12)) & 0x10);
      dst[j] = static_cast<float>(q0) * d + m;
      dst[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

// ggml's quantize_row_q5_1_ref: the block's [min, max] in 31 steps, rounded half up.
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
      if (src[j] < lo) lo = src[j];
      if (src[j] > hi) hi = src[j];
    }
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_io::put_f16(dst, d);
    block_io::put_f16(dst + 2, lo);
    uint32_t h = 0;
    for (int j = 0; j < 16; ++j) {
      const auto q0 = static_cast<uint8_t>((src[j] - lo) * id + 0.5f);
      const auto q1 = static_cast<uint8_t>((src[j + 16] - lo) * id + 0.5f);
      dst[8 + j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      h |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      h |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(dst + 4, &h, 4);
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  f.dmin = block_io::u16(b + 2);
  const uint32_t h = high_bits(b + 4);
  for (int j = 0; j < 16; ++j) {
    f.code[j] = static_cast<uint8_t>((b[8 + j] & 0xF) | (((h >> j) & 1) << 4));
    f.code[j + 16] = static_cast<uint8_t>((b[8 + j] >> 4) | (((h >> (j + 16)) & 1) << 4));
  }
}

}  // namespace

const TypeInfo kQ5_1Type{TensorType::Q5_1, "Q5_1", 32, kBytes, dequantize, quantize, fields, kQ5_1Format};

}  // namespace h2o
