// Q8_0, 34 bytes per 32 values (ggml block_q8_0):
//   [0..2)  d   fp16
//   [2..34) qs  int8 values
//   x = q * d
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <algorithm>
#include <cmath>

#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 34;

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src);
    for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
  }
}

// ggml's quantize_row_q8_0_ref: d = max|x| / 127, values rounded half away from zero.
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_io::put_f16(dst, d);
    for (int j = 0; j < 32; ++j) dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(src[j] * id)));
  }
}

// Codes are the values plus 128 (0..255).
void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  for (int j = 0; j < 32; ++j) f.code[j] = static_cast<uint8_t>(b[2 + j] ^ 0x80);
}

}  // namespace

const TypeInfo kQ8_0Type{TensorType::Q8_0, "Q8_0", 32, kBytes, dequantize, quantize, fields, kQ8_0Format};

}  // namespace h2o
