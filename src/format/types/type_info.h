// The tensor-type registry: what one type is, in one place. Each type lives in its own file
// (src/format/types/<type>.cpp: block layout, decoder, encoder, integer fields) and is one
// line of kTypes in registry.cpp. Everything else reads the registry:
//   - the GGUF reader and writer (block sizes), `inspect` (names),
//   - dequantize_row / quantize_row (format/tensor_type.h),
//   - the integer matrix products: a quantized type's values meet activations quantized to
//     Q8_0 (blocks of 32) or Q8_K (super-blocks of 256) as small integers with per-block
//     or per-sub-block scales (IntFormat). int_dot.h holds the fixed-order reference
//     product built from a type's fields; packed_quant.h repacks every such type into row
//     groups for the SIMD kernels (kernels/packed_*-inl.h), whose kernel table is indexed
//     by the type's slot and falls back to the reference where a target has no kernel.
// Adding a type: a file here, a line in types.h and in registry.cpp; a kernel instance in
// kernels/simd_quant.cpp makes it fast (docs/architecture.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace h2o {

enum class TensorType : uint32_t;

// Activations a quantized type is multiplied with (llama.cpp's vec_dot_type idea).
enum class ActKind : uint8_t {
  Float,  // F32 / F16 / BF16 weights: float activations
  Q8_0,   // blocks of 32: int8 values, one float scale (an fp16 value) and the block's sum
  Q8_K,   // super-blocks of 256: int8 values, one float scale, sums of each 16 and 32 values
};

// How a quantized type's stored codes become integers for the products (compile-time
// constants: the SIMD kernels are instantiated per format).
//   value code u: an unsigned `bits`-bit integer per value;
//   signed value w = u - offset, or kIq4Values[u] for the non-linear types;
//   Q8_0 kinds: per block of 32 an fp16 scale d (and, has_min, an fp16 m added):
//       x = d * w (+ m);
//   Q8_K kinds: per super-block of 256 fp16 d (and dmin), per `sub` values (16 or 32) an
//       integer scale s_j (and min m_j): x = d * s_j * w (- dmin * m_j).
struct IntFormat {
  ActKind act = ActKind::Float;
  int bits = 0;
  int offset = 0;
  bool nonlinear = false;
  int sub = 0;
  bool has_min = false;

  constexpr int elems() const { return act == ActKind::Q8_K ? 256 : 32; }
  constexpr int n_sub() const { return act == ActKind::Q8_K ? 256 / sub : 1; }
  constexpr bool operator==(const IntFormat&) const = default;
};

// IQ4_NL / IQ4_XS's sixteen levels (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// One block's integers, read from its bytes (what the packer and the reference product use).
struct BlockFields {
  uint8_t code[256] = {};   // value codes u, in element order
  int8_t scale[16] = {};    // Q8_K kinds: sub-block scales s_j
  uint8_t min[16] = {};     // Q8_K kinds with has_min: sub-block mins m_j
  uint16_t d = 0;           // fp16 bits: the block's (super-)scale
  uint16_t dmin = 0;        // fp16 bits: Q8_0 kinds' m, Q8_K kinds' dmin (has_min)
};

struct TypeInfo {
  TensorType type;
  std::string_view name;  // ggml's name ("Q4_K")
  size_t block_elems;    // values per block (1 for float types)
  size_t block_bytes;
  // n values (a multiple of block_elems) from src into dst: ggml's dequantize_row_* formula.
  void (*dequantize)(const uint8_t* src, float* dst, size_t n);
  // n floats into n / block_elems blocks: ggml's reference quantizer (what llama-quantize
  // writes without an importance matrix), written afresh. Throws h2o::Error for a length
  // that is not a multiple of block_elems.
  void (*quantize)(const float* src, uint8_t* dst, size_t n);
  // Quantized types: the integer fields of one block; null for float types.
  void (*fields)(const uint8_t* block, BlockFields& out);
  IntFormat format;  // act == Float for float types
};

}  // namespace h2o
