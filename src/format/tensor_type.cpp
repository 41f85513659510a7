#include "format/tensor_type.h"

#include <bit>
#include <cctype>
#include <cmath>

#include "common/check.h"

namespace h2o {
namespace {

// ggml's names of the types this engine does not run, for messages (include/ggml.h).
struct ForeignType {
  uint32_t id;
  std::string_view name;
};
constexpr ForeignType kForeign[] = {
    {4, "Q4_2 (removed)"}, {5, "Q4_3 (removed)"}, {9, "Q8_1"},   {15, "Q8_K"},   {16, "IQ2_XXS"},
    {17, "IQ2_XS"},        {18, "IQ3_XXS"},       {19, "IQ1_S"},  {21, "IQ3_S"},  {22, "IQ2_S"},
    {24, "I8"},            {25, "I16"},           {26, "I32"},    {27, "I64"},    {28, "F64"},
    {29, "IQ1_M"},         {34, "TQ1_0"},         {35, "TQ2_0"},  {39, "MXFP4"},  {40, "NVFP4"},
    {41, "Q1_0"},          {42, "Q2_0"},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

size_t type_slot(TensorType t) {
  const auto types = all_types();
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i]->type == t) return i;
  }
  fail("unknown tensor type {}", static_cast<uint32_t>(t));
}

const TypeInfo* type_traits(uint32_t id) {
  for (const TypeInfo* t : all_types()) {
    if (static_cast<uint32_t>(t->type) == id) return t;
  }
  return nullptr;
}

std::string type_name(uint32_t id) {
  if (const TypeInfo* t = type_traits(id)) return std::string(t->name);
  for (const auto& f : kForeign) {
    if (f.id == id) return std::string(f.name) + " (type " + std::to_string(id) + ")";
  }
  return "type " + std::to_string(id);
}

std::optional<TensorType> find_type(std::string_view name) {
  const std::string want = lower(name);
  for (const TypeInfo* t : all_types()) {
    if (lower(t->name) == want) return t->type;
  }
  return std::nullopt;
}

const TypeInfo& traits(TensorType t) { return *all_types()[type_slot(t)]; }

size_t row_bytes(TensorType t, size_t n) {
  const auto& tr = traits(t);
  return n / tr.block_elems * tr.block_bytes;
}

// IEEE half conversion, exact for every value (same results as ggml's fp16 tables).
float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits = 0;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 0x1F) {
    // Inf stays inf; NaN keeps its payload and comes out quiet, as F16C's vcvtph2ps and
    // ggml's portable fallback (which passes the value through a float multiply) do.
    bits = sign | 0x7F800000u | mant << 13 | (mant != 0 ? 0x00400000u : 0u);
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

uint16_t fp32_to_fp16(float f) {
  // Round to nearest even, as _cvtss_sh / ggml's fallback do.
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7FFFFFFF;
  if (absx > 0x7F800000) return static_cast<uint16_t>(sign | 0x7E00);  // NaN
  if (absx >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // overflow -> inf
  if (absx < 0x38800000) {  // subnormal half or zero
    const float a = std::bit_cast<float>(absx);
    const float scaled = a * 16777216.0f;  // 2^24: one half-subnormal ulp becomes 1
    const auto m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t mant_odd = (absx >> 13) & 1;
  const uint32_t rounded = absx + 0xFFF + mant_odd;
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000) >> 13));
}

float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

void q4_k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequantize_row(TensorType t, const void* src, float* dst, size_t n) {
  const TypeInfo& ti = traits(t);
  if (n % ti.block_elems != 0) fail("{}: {} values are not a multiple of the block size {}", ti.name, n, ti.block_elems);
  ti.dequantize(static_cast<const uint8_t*>(src), dst, n);
}

void quantize_row(TensorType t, const float* src, void* dst, size_t n) {
  const TypeInfo& ti = traits(t);
  if (n % ti.block_elems != 0) {
    fail("{}: a row of {} values is not a multiple of the block size {}", ti.name, n, ti.block_elems);
  }
  // The encoders convert floats to integers: a NaN or infinity would be undefined there.
  if (ti.block_elems > 1) {
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(src[i])) fail("{}: cannot quantize the non-finite value {} at index {}", ti.name, src[i], i);
    }
  }
  ti.quantize(src, static_cast<uint8_t*>(dst), n);
}

}  // namespace h2o
