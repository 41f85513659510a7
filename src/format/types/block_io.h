// Little helpers the type files share: fp16 fields of a block, little-endian.
#pragma once

#include <cstdint>

#include "format/tensor_type.h"

namespace h2o::block_io {

inline uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline float f16(const uint8_t* p) { return fp16_to_fp32(u16(p)); }
inline void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void put_f16(uint8_t* p, float v) { put_u16(p, fp32_to_fp16(v)); }

}  // namespace h2o::block_io
