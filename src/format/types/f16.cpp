// F16: IEEE half precision, 2 bytes per value (little-endian).
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/types/block_io.h"
#include "format/types/types.h"

namespace h2o {
namespace {

void dequantize(const uint8_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = block_io::f16(src + 2 * i);
}
void quantize(const float* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) block_io::put_f16(dst + 2 * i, src[i]);
}

}  // namespace

const TypeInfo kF16Type{TensorType::F16, "F16", 1, 2, dequantize, quantize, nullptr, {}};

}  // namespace h2o
