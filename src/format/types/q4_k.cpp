// Q4_K, 144 bytes per 256 values (ggml block_q4_K):
//   [0..2)    d     fp16: super-scale of the eight 6-bit sub-block scales
//   [2..4)    dmin  fp16: super-scale of the eight 6-bit sub-block mins
//   [4..16)   eight (scale, min) pairs of 6 bits (q4_k_scale_min): pair j < 4 in the low
//             six bits of bytes 4+j / 8+j; pair j >= 4 in the nibbles of byte 12+(j-4)
//             (scale low, min high) and the top two bits of bytes 4+(j-4) / 4+j
//   [16..144) 4-bit values: values 64c..64c+31 in the low nibbles of bytes 32c..32c+31,
//             values 64c+32..64c+63 in their high nibbles
//   x = d * scale_j * q - dmin * min_j, j = e / 32 (sub-blocks of 32), q in [0, 15]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_k.h"
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 144;

int code_at(const uint8_t* qs, int e) {
  const uint8_t byte = qs[32 * (e / 64) + e % 32];
  return e % 64 < 32 ? byte & 0xF : byte >> 4;
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src), dmin = block_io::f16(src + 2);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc = 0, m = 0;
      q4_k_scale_min(j, src + 4, &sc, &m);
      const float dj = d * static_cast<float>(sc), mj = dmin * static_cast<float>(m);
      for (int e = 32 * j; e < 32 * j + 32; ++e) dst[e] = dj * static_cast<float>(code_at(src + 16, e)) - mj;
    }
  }
}

// ggml's quantize_row_q4_K_ref (quantize_affine_k with 16 levels, grids 14..16 steps).
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += 256, dst += kBytes) {
    uint8_t L[256];
    quantize_affine_k(src, 15, -1.0f, 20, dst, L);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) dst[16 + 32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  f.dmin = block_io::u16(b + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc = 0;
    q4_k_scale_min(j, b + 4, &sc, &f.min[j]);
    f.scale[j] = static_cast<int8_t>(sc);
  }
  for (int e = 0; e < 256; ++e) f.code[e] = static_cast<uint8_t>(code_at(b + 16, e));
}

}  // namespace

const TypeInfo kQ4_KType{TensorType::Q4_K, "Q4_K", 256, kBytes, dequantize, quantize, fields, kQ4_KFormat};

}  // namespace h2o
