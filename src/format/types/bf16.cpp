// BF16: the top 16 bits of an IEEE single, 2 bytes per value (little-endian).
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(block_io::u16(src + 2 * i));
}
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) block_io::put_u16(dst + 2 * i, fp32_to_bf16(src[i]));
}

}  // namespace

const TypeInfo kBF16Type{TensorType::BF16, "BF16", 1, 2, dequantize, quantize, nullptr, {}};

}  // namespace h2o
