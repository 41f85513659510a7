// IQ4_NL, 18 bytes per 32 values (ggml block_iq4_nl): four-bit indices into sixteen
// non-uniform levels (kIq4Values, -127..113).
//   [0..2)  d   fp16
//   [2..18) qs  value j < 16's index in the low nibble of qs[j], value j + 16's in the high
//   x = d * kIq4Values[q]
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_k.h"
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

constexpr size_t kBytes = 18;

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += kBytes, dst += 32) {
    const float d = block_io::f16(src);
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>(kIq4Values[src[2 + j] & 0xF]);
      dst[j + 16] = d * static_cast<float>(kIq4Values[src[2 + j] >> 4]);
    }
  }
}

// What llama-quantize writes (ggml's quantize_iq4_nl without an importance matrix: the
// search of quantize_row_iq4_nl_impl with 7 trial grids either side).
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, src += 32, dst += kBytes) {
    uint16_t d = 0;
    quantize_iq4(src, 32, 7, &d, dst + 2, nullptr);
    block_io::put_u16(dst, d);
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

const TypeInfo kIQ4_NLType{TensorType::IQ4_NL, "IQ4_NL", 32, kBytes, dequantize, quantize, fields, kIQ4_NLFormat};

}  // namespace h2o
