// Tensor element types as numbered by ggml (include/ggml.h), with their block layouts
// (src/ggml-common.h). Quantized types store `block_elems` values in `block_bytes`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace h2o {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
};

struct TypeTraits {
  TensorType type;
  std::string_view name;
  size_t block_elems;  // values per block (1 for plain float types)
  size_t block_bytes;  // bytes per block
};

// Traits of a type id read from a file; nullopt for ids this engine cannot compute with.
std::optional<TypeTraits> type_traits(uint32_t ggml_type_id);
// Name of a type id for messages ("Q4_0", or "type 17" for unknown ids).
std::string type_name(uint32_t ggml_type_id);

const TypeTraits& traits(TensorType t);

// Bytes of a row of `n` elements; n must be a multiple of the block size.
size_t row_bytes(TensorType t, size_t n);

// fp16 / bf16 <-> fp32, bit-exact with ggml's reference conversions.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept quiet

// Q4_K's sub-block j (0..7) scale and min: six bits each, packed for eight sub-blocks in
// the 12 bytes at `scales` (block byte 4; ggml's get_scale_min_k4).
void q4_k_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m);

// Decode `n` values (a multiple of the block size) of type `t` starting at `src` into `dst`.
// Scalar reference used by loaders, tests and the slow paths.
void dequantize_row(TensorType t, const void* src, float* dst, size_t n);

// Encode n floats into blocks of type t (every type above; Q4_K/Q6_K in quantize_k.*), as
// ggml's reference quantizers do. Used to write GGUF files and to quantize activations.
void quantize_row(TensorType t, const float* src, void* dst, size_t n);

}  // namespace h2o
