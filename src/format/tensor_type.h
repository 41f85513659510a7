// Tensor element types as numbered by ggml (include/ggml.h), looked up in the type registry
// (format/types/: one file per type, one line in registry.cpp), and the fp16 / bf16
// conversions every type uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "format/types/type_info.h"

namespace h2o {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
  IQ4_XS = 23,
  BF16 = 30,
};

using TypeTraits = TypeInfo;

// Every registered type, in registry order; kTypeSlots of them. A type's slot is its index
// here (dense, for tables indexed by type such as the kernels').
inline constexpr size_t kTypeSlots = 15;
std::span<const TypeInfo* const> all_types();
size_t type_slot(TensorType t);

// The registry entry of a type id read from a file; null for ids this engine cannot compute
// with.
const TypeInfo* type_traits(uint32_t ggml_type_id);
// Name of a type id for messages: "Q4_0"; ggml's name and id for a type ggml has but this
// engine does not ("IQ2_XXS (type 16)"); "type 99" for ids unknown to both.
std::string type_name(uint32_t ggml_type_id);
// A registered type by name, any case ("q4_k", "Q4_K"); nullopt if there is none.
std::optional<TensorType> find_type(std::string_view name);

const TypeInfo& traits(TensorType t);

// Bytes of a row of `n` elements; n must be a multiple of the block size.
size_t row_bytes(TensorType t, size_t n);

// fp16 / bf16 <-> fp32, bit-exact with ggml's reference conversions.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept quiet

// Q4_K / Q5_K's sub-block j (0..7) scale and min: six bits each, packed for eight
// sub-blocks in the 12 bytes at `scales` (ggml's get_scale_min_k4).
void q4_k_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m);

// Decode `n` values (a multiple of the block size) of type `t` starting at `src` into `dst`:
// ggml's dequantization formula for the type, bit for bit. Used by loaders, `quantize`,
// tests and the reference paths.
void dequantize_row(TensorType t, const void* src, float* dst, size_t n);

// Encode n floats into blocks of type t as ggml's reference quantizers do (what
// llama-quantize writes without an importance matrix). Throws h2o::Error when n is not a
// multiple of the block size.
void quantize_row(TensorType t, const float* src, void* dst, size_t n);

}  // namespace h2o
