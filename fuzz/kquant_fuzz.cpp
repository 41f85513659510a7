// libFuzzer target for K-quant decoding: dequantize_row of Q4_K and Q6_K on arbitrary
// block bytes, held bit for bit to a reference written here from ggml's block layouts
// (ggml-common.h block_q4_K / block_q6_K, dequantize_row_q4_K / _q6_K in ggml-quants.c),
// with its own fp16 conversion. Any scale bits (subnormal, inf, NaN) must decode the same.
//
// Input: byte 0 picks the type (even: Q4_K, odd: Q6_K); the rest, cut to whole blocks, is
// decoded.
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "format/tensor_type.h"

namespace {

// IEEE half to float, bit by bit (not the engine's conversion).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h >> 15) << 31;
  const int exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | static_cast<uint32_t>(exp - 15 + 127) << 23 | (mant << 13));
}

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// block_q4_K: d (f16), dmin (f16), scales[12] (6-bit scale and min per 32-value sub-block),
// qs[128] (4-bit values, low nibbles first for each 64-value group).
void ref_q4_k(const uint8_t* b, float* y) {
  const float d = half_to_float(u16(b)), dmin = half_to_float(u16(b + 2));
  const uint8_t* s = b + 4;
  const uint8_t* q = b + 16;
  for (int g = 0; g < 4; ++g) {
    float scale[2], min[2];
    for (int h = 0; h < 2; ++h) {
      const int j = 2 * g + h;
      const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
      const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
      scale[h] = d * static_cast<float>(sc);
      min[h] = dmin * static_cast<float>(m);
    }
    for (int l = 0; l < 32; ++l) y[64 * g + l] = scale[0] * static_cast<float>(q[32 * g + l] & 0xF) - min[0];
    for (int l = 0; l < 32; ++l) y[64 * g + 32 + l] = scale[1] * static_cast<float>(q[32 * g + l] >> 4) - min[1];
  }
}

// block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8 per 16
// values), d (f16). Value = d * scale * (6-bit q - 32).
void ref_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_to_float(u16(b + 208));
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
    const uint8_t low = ql[64 * half + 32 * (quarter & 1) + l];
    const int lo = quarter < 2 ? low & 0xF : low >> 4;
    const int hi = (qh[32 * half + l] >> (2 * quarter)) & 3;
    const int q = (lo | hi << 4) - 32;
    y[i] = d * static_cast<float>(sc[8 * half + 2 * quarter + l / 16]) * static_cast<float>(q);
  }
}

bool same(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) || (a != a && b != b); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool q6 = data[0] & 1;
  const h2o::TensorType type = q6 ? h2o::TensorType::Q6_K : h2o::TensorType::Q4_K;
  const size_t block = q6 ? 210 : 144;
  const size_t blocks = (size - 1) / block;
  if (blocks == 0) return 0;
  // An exact-size copy: a read past the blocks is an ASan report.
  const std::vector<uint8_t> in(data + 1, data + 1 + blocks * block);
  std::vector<float> got(blocks * 256), want(blocks * 256);
  h2o::dequantize_row(type, in.data(), got.data(), got.size());
  for (size_t i = 0; i < blocks; ++i) (q6 ? ref_q6_k : ref_q4_k)(in.data() + i * block, want.data() + i * 256);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!same(got[i], want[i])) __builtin_trap();
  }
  return 0;
}
