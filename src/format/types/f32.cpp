// F32: IEEE single precision, 4 bytes per value.
// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include <cstring>

#include "format/types/types.h"

namespace h2o {
namespace {

void dequantize(const uint8_t* src, float* dst, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }
void quantize(const float* src, uint8_t* dst, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }

}  // namespace

const TypeInfo kF32Type{TensorType::F32, "F32", 1, 4, dequantize, quantize, nullptr, {}};

}  // namespace h2o
