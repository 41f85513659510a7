// Q4_0, 18 bytes per 32 values (ggml block_q4_0):
//   [0..2)  d   fp16
//   [2..18) qs  value j < 16 in the low nibble of qs[j], value j + 16 in its high nibble
//   x = d * (q - 8), q in [0, 15]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <algorithm>
#include <cmath>

#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 18;

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src);
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>((src[2 + j] & 0xF) - 8) * d;
      dst[j + 16] = static_cast<float>((src[2 + j] >> 4) - 8) * d;
    }
  }
}

// ggml's quantize_row_q4_0_ref: d = (the largest-magnitude value) / -8, so that value is
// level 0 exactly; the others round half up and clip at 15.
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_io::put_f16(dst, d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(src[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(src[j + 16] * id + 8.5f)));
      dst[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  for (int j = 0; j < 16; ++j) {
    f.code[j] = b[2 + j] & 0xF;
    f.code[j + 16] = b[2 + j] >> 4;
  }
}

}  // namespace

const TypeInfo kQ4_0Type{TensorType::Q4_0, "Q4_0", 32, kBytes, dequantize, quantize, fields, kQ4_0Format};

}  // namespace h2o
