// Q5_K, 176 bytes per 256 values (ggml block_q5_K):
//   [0..16)   d, dmin and the eight 6-bit (scale, min) pairs, as Q4_K's first 16 bytes
//   [16..48)  qh   fifth bits: value 64c + l (l < 32) at bit 2c of qh[l], value
//                  64c + 32 + l at bit 2c + 1
//   [48..176) qs   low four bits, as Q4_K's values
//   x = d * scale_j * q - dmin * min_j, j = e / 32, q in [0, 31]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_k.h"
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 176;

int code_at(const uint8_t* b, int e) {
  const int c = e / 64, l = e % 32, upper = e % 64 < 32 ? 0 : 1;
  const uint8_t byte = b[48 + 32 * c + l];
  const int low = upper ? byte >> 4 : byte & 0xF;
  return low | (((b[16 + l] >> (2 * c + upper)) & 1) << 4);
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src), dmin = block_io::f16(src + 2);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc = 0, m = 0;
      q4_k_scale_min(j, src + 4, &sc, &m);
      const float dj = d * static_cast<float>(sc), mj = dmin * static_cast<float>(m);
      for (int e = 32 * j; e < 32 * j + 32; ++e) dst[e] = dj * static_cast<float>(code_at(src, e)) - mj;
    }
  }
}

// ggml's quantize_row_q5_K_ref (quantize_affine_k with 32 levels, grids 30.5..32 steps).
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += 256, dst += kBytes) {
    uint8_t L[256];
    quantize_affine_k(src, 31, -0.5f, 15, dst, L);
    uint8_t* qh = dst + 16;
    for (int l = 0; l < 32; ++l) qh[l] = 0;
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        dst[48 + 32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        qh[l] = static_cast<uint8_t>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
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
  for (int e = 0; e < 256; ++e) f.code[e] = static_cast<uint8_t>(code_at(b, e));
}

}  // namespace

const TypeInfo kQ5_KType{TensorType::Q5_K, "Q5_K", 256, kBytes, dequantize, quantize, fields, kQ5_KFormat};

}  // namespace h2o
