// Every tensor type, one line each: its TypeInfo (defined in <type>.cpp) and, for the
// quantized types, its integer format as a compile-time constant (the SIMD kernels are
// instantiated per format, kernels/simd_quant.cpp). Byte layouts are in each type's file.
#pragma once

#include "format/tensor_type.h"
#include "format/types/type_info.h"

namespace h2o {

// Float types: no integer format.
extern const TypeInfo kF32Type;
extern const TypeInfo kF16Type;
extern const TypeInfo kBF16Type;

// Blocks of 32 against Q8_0 activations.               act         bits off  nonlin sub min
inline constexpr IntFormat kQ4_0Format{ActKind::Q8_0, 4, 8, false, 0, false};
inline constexpr IntFormat kQ4_1Format{ActKind::Q8_0, 4, 0, false, 0, true};
inline constexpr IntFormat kQ5_0Format{ActKind::Q8_0, 5, 16, false, 0, false};
inline constexpr IntFormat kQ5_1Format{ActKind::Q8_0, 5, 0, false, 0, true};
inline constexpr IntFormat kQ8_0Format{ActKind::Q8_0, 8, 128, false, 0, false};
inline constexpr IntFormat kIQ4_NLFormat{ActKind::Q8_0, 4, 0, true, 0, false};
extern const TypeInfo kQ4_0Type;
extern const TypeInfo kQ4_1Type;
extern const TypeInfo kQ5_0Type;
extern const TypeInfo kQ5_1Type;
extern const TypeInfo kQ8_0Type;
extern const TypeInfo kIQ4_NLType;

// Super-blocks of 256 against Q8_K activations.
inline constexpr IntFormat kQ2_KFormat{ActKind::Q8_K, 2, 0, false, 16, true};
inline constexpr IntFormat kQ3_KFormat{ActKind::Q8_K, 3, 4, false, 16, false};
inline constexpr IntFormat kQ4_KFormat{ActKind::Q8_K, 4, 0, false, 32, true};
inline constexpr IntFormat kQ5_KFormat{ActKind::Q8_K, 5, 0, false, 32, true};
inline constexpr IntFormat kQ6_KFormat{ActKind::Q8_K, 6, 32, false, 16, false};
inline constexpr IntFormat kIQ4_XSFormat{ActKind::Q8_K, 4, 0, true, 32, false};
extern const TypeInfo kQ2_KType;
extern const TypeInfo kQ3_KType;
extern const TypeInfo kQ4_KType;
extern const TypeInfo kQ5_KType;
extern const TypeInfo kQ6_KType;
extern const TypeInfo kIQ4_XSType;

}  // namespace h2o
