// Q4_1, 20 bytes per 32 values (ggml block_q4_1):
//   [0..2)  d   fp16      [2..4) m  fp16
//   [4..20) qs  value j < 16 in the low nibble of qs[j], value j + 16 in its high nibble
//   x = q * d + m, q in [0, 15]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <algorithm>
#include <cfloat>

#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 20;

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src), m = block_io::f16(src + 2);
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>(src[4 + j] & 0xF) * d + m;
      dst[j + 16] = static_cast<float>(src[4 + j] >> 4) * d + m;
    }
  }
}

// ggml's quantize_row_q4_1_ref: the block's [min, max] in 15 steps, rounded half up.
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
      if (src[j] < lo) lo = src[j];
      if (src[j] > hi) hi = src[j];
    }
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_io::put_f16(dst, d);
    block_io::put_f16(dst + 2, lo);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((src[j] - lo) * id + 0.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>((src[j + 16] - lo) * id + 0.5f)));
      dst[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  f.dmin = block_io::u16(b + 2);
  for (int j = 0; j < 16; ++j) {
    f.code[j] = b[4 + j] & 0xF;
    f.code[j + 16] = b[4 + j] >> 4;
  }
}

}  // namespace

const TypeInfo kQ4_1Type{TensorType::Q4_1, "Q4_1", 32, kBytes, dequantize, quantize, fields, kQ4_1Format};

}  // namespace h2o
