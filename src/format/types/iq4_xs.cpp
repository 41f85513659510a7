// IQ4_XS, 136 bytes per 256 values (ggml block_iq4_xs): IQ4_NL's levels with 6-bit
// sub-block scales.
//   [0..2)    d         fp16
//   [2..4)    scales_h  u16 (little-endian): bits 2b..2b+1 are the top bits of ls_b
//   [4..8)    scales_l  the low four bits of ls_b in nibble b % 2 of byte b / 2
//   [8..136)  qs        sub-block b (32 values): value j < 16's index in the low nibble
//                       of qs[16b + j], value j + 16's in the high nibble
//   x = d * (ls_b - 32) * kIq4Values[q]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_k.h"
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 136;

int scale_at(const uint8_t* b, int ib) {
  const int lo = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF;
  const int hi = (block_io::u16(b + 2) >> (2 * ib)) & 3;
  return (lo | (hi << 4)) - 32;
}

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += kBytes, dst += 256) {
    const float d = block_io::f16(src);
    for (int ib = 0; ib < 8; ++ib) {
      const float dl = d * static_cast<float>(scale_at(src, ib));
      const uint8_t* qs = src + 8 + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        dst[32 * ib + j] = dl * static_cast<float>(kIq4Values[qs[j] & 0xF]);
        dst[32 * ib + 16 + j] = dl * static_cast<float>(kIq4Values[qs[j] >> 4]);
      }
    }
  }
}

// What llama-quantize writes (ggml's quantize_iq4_xs without an importance matrix).
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 256; ++b, src += 256, dst += kBytes) {
    uint16_t d = 0;
    int8_t ls[8] = {};
    quantize_iq4(src, 256, 7, &d, dst + 8, ls);
    block_io::put_u16(dst, d);
    uint16_t high = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const int l = ls[ib] + 32;
      if (ib % 2 == 0) {
        dst[4 + ib / 2] = static_cast<uint8_t>(l & 0xF);
      } else {
        dst[4 + ib / 2] = static_cast<uint8_t>(dst[4 + ib / 2] | ((l & 0xF) << 4));
      }
      high = static_cast<uint16_t>(high | ((l >> 4) << (2 * ib)));
    }
    block_io::put_u16(dst + 2, high);
  }
}

void fields(const uint8_t* b, BlockFields& f) {
  f.d = block_io::u16(b);
  for (int ib = 0; ib < 8; ++ib) {
    f.scale[ib] = static_cast<int8_t>(scale_at(b, ib));
    for (int j = 0; j < 16; ++j) {
      f.code[32 * ib + j] = b[8 + 16 * ib + j] & 0xF;
      f.code[32 * ib + 16 + j] = b[8 + 16 * ib + j] >> 4;
    }
  }
}

}  // namespace

const TypeInfo kIQ4_XSType{TensorType::IQ4_XS, "IQ4_XS", 256, kBytes, dequantize, quantize, fields, kIQ4_XSFormat};

}  // namespace h2o
