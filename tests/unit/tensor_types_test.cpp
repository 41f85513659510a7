// Every quantized type of the registry (format/types/) against decoders written here
// straight from the layout descriptions (shared/docs/model-families.md §4.2, formats.md),
// element by element, on hand-built and random blocks: bit for bit, with ggml's
// association of each formula. Also: the integer fields the packer and the products read
// give the same values, the encoders round-trip within their error bounds and keep
// all-zero blocks zero, names and ids resolve, and bad lengths are errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/tensor_type.h"
#include "format/types/type_info.h"

namespace h2o {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr int8_t kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float f16(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }
uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}
int nib(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }

// Element e of one block, decoded from the layout description.
float decode(TensorType t, const uint8_t* b, int e) {
  switch (t) {
    case TensorType::Q4_0:
      return static_cast<float>(nib(b + 2, e) - 8) * f16(b);
    case TensorType::Q4_1:
      return static_cast<float>(nib(b + 4, e)) * f16(b) + f16(b + 2);
    case TensorType::Q5_0: {
      const int q = nib(b + 6, e) | static_cast<int>(((le32(b + 2) >> e) & 1) << 4);
      return static_cast<float>(q - 16) * f16(b);
    }
    case TensorType::Q5_1: {
      const int q = nib(b + 8, e) | static_cast<int>(((le32(b + 4) >> e) & 1) << 4);
      return static_cast<float>(q) * f16(b) + f16(b + 2);
    }
    case TensorType::Q8_0:
      return static_cast<float>(static_cast<int8_t>(b[2 + e])) * f16(b);
    case TensorType::IQ4_NL:
      return f16(b) * static_cast<float>(kLevels[nib(b + 2, e)]);
    case TensorType::Q2_K: {
      const int h = e / 128, j = e % 128 / 32, l = e % 32;
      const int q = (b[16 + 32 * h + l] >> (2 * j)) & 3;
      const int sc = b[e / 16];
      return f16(b + 80) * static_cast<float>(sc & 0xF) * static_cast<float>(q) - f16(b + 82) * static_cast<float>(sc >> 4);
    }
    case TensorType::Q3_K: {
      const int k = e / 16;
      const uint8_t* s = b + 96;
      const int lo = k < 8 ? s[k] & 0xF : s[k - 8] >> 4;
      const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
      const int h = e / 128, j = e % 128 / 32, l = e % 32;
      const int q2 = (b[32 + 32 * h + l] >> (2 * j)) & 3;
      const int hb = (b[l] >> (4 * h + j)) & 1;
      return f16(b + 108) * static_cast<float>((lo | (hi << 4)) - 32) * static_cast<float>(q2 - (hb ? 0 : 4));
    }
    case TensorType::Q4_K:
    case TensorType::Q5_K: {
      const uint8_t* s = b + 4;
      const int sb = e / 32;
      int sc = 0, m = 0;
      if (sb < 4) {
        sc = s[sb] & 63;
        m = s[sb + 4] & 63;
      } else {
        sc = (s[sb + 4] & 0xF) | ((s[sb - 4] >> 6) << 4);
        m = (s[sb + 4] >> 4) | ((s[sb] >> 6) << 4);
      }
      const int c = e / 64, l = e % 32, upper = e % 64 >= 32;
      const uint8_t* qs = b + (t == TensorType::Q4_K ? 16 : 48);
      int q = upper ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
      if (t == TensorType::Q5_K) q += 16 * ((b[16 + l] >> (2 * c + upper)) & 1);
      return f16(b) * static_cast<float>(sc) * static_cast<float>(q) - f16(b + 2) * static_cast<float>(m);
    }
    case TensorType::Q6_K: {
      const int h = e / 128, part = e % 128 / 32, l = e % 32;
      const uint8_t low = b[64 * h + 32 * (part % 2) + l];
      const int q = ((part < 2 ? low & 0xF : low >> 4) | (((b[128 + 32 * h + l] >> (2 * part)) & 3) << 4)) - 32;
      return f16(b + 208) * static_cast<float>(static_cast<int8_t>(b[192 + e / 16])) * static_cast<float>(q);
    }
    case TensorType::IQ4_XS: {
      const int ib = e / 32;
      const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b[2] | (b[3] << 8)) >> (2 * ib) & 3) << 4);
      return f16(b) * static_cast<float>(ls - 32) * static_cast<float>(kLevels[nib(b + 8 + 16 * ib, e % 32)]);
    }
    default:
      break;
  }
  ADD_FAILURE() << "no decoder for " << traits(t).name;
  return 0;
}

struct Scales {
  TensorType type;
  int d_at, dmin_at;  // fp16 fields set to sane values in random blocks (-1: none)
};
const Scales kQuantized[] = {
    {TensorType::Q4_0, 0, -1}, {TensorType::Q4_1, 0, 2},   {TensorType::Q5_0, 0, -1},   {TensorType::Q5_1, 0, 2},
    {TensorType::Q8_0, 0, -1}, {TensorType::IQ4_NL, 0, -1}, {TensorType::Q2_K, 80, 82}, {TensorType::Q3_K, 108, -1},
    {TensorType::Q4_K, 0, 2},  {TensorType::Q5_K, 0, 2},    {TensorType::Q6_K, 208, -1}, {TensorType::IQ4_XS, 0, -1},
};

Bytes random_blocks(const Scales& s, size_t n_blocks, uint32_t seed) {
  const size_t bb = traits(s.type).block_bytes;
  Bytes b(n_blocks * bb);
  std::mt19937 rng(seed);
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (size_t i = 0; i < n_blocks; ++i) {
    put_f16(&b[i * bb + static_cast<size_t>(s.d_at)], u(rng));
    if (s.dmin_at >= 0) put_f16(&b[i * bb + static_cast<size_t>(s.dmin_at)], u(rng));
  }
  return b;
}

TEST(TensorTypes, RegistryNamesIdsAndSizes) {
  EXPECT_EQ(all_types().size(), kTypeSlots);
  for (size_t i = 0; i < all_types().size(); ++i) {
    const TypeInfo& t = *all_types()[i];
    EXPECT_EQ(type_slot(t.type), i);
    EXPECT_EQ(type_traits(static_cast<uint32_t>(t.type)), &t);
    EXPECT_EQ(find_type(t.name), t.type);
    EXPECT_EQ(type_name(static_cast<uint32_t>(t.type)), t.name);
  }
  // ggml's sizes (ggml-common.h): bytes per block.
  const std::pair<TensorType, size_t> sizes[] = {
      {TensorType::Q4_1, 20}, {TensorType::Q5_0, 22},  {TensorType::Q5_1, 24}, {TensorType::Q2_K, 84},
      {TensorType::Q3_K, 110}, {TensorType::Q5_K, 176}, {TensorType::IQ4_NL, 18}, {TensorType::IQ4_XS, 136}};
  for (const auto& [t, bytes] : sizes) EXPECT_EQ(traits(t).block_bytes, bytes) << traits(t).name;
  EXPECT_EQ(find_type("q5_k"), TensorType::Q5_K);
  EXPECT_EQ(find_type("iq4_xs"), TensorType::IQ4_XS);
  EXPECT_FALSE(find_type("q7_0").has_value());
  EXPECT_EQ(type_traits(16), nullptr);
  EXPECT_EQ(type_name(16), "IQ2_XXS (type 16)");
  EXPECT_EQ(type_name(99), "type 99");
}

TEST(TensorTypes, HandBuiltBlocksDecodeAsTheLayoutSays) {
  // Q4_1: d = 0.5, m = -2, values j -> j % 16.
  uint8_t q41[20];
  put_f16(q41, 0.5f);
  put_f16(q41 + 2, -2.0f);
  for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[256];
  dequantize_row(TensorType::Q4_1, q41, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j) - 2.0f);
    EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(15 - j) - 2.0f);
  }
  // Q5_0: fifth bits set for odd values only: q = j | 16 (j odd), d = 1 -> q - 16.
  uint8_t q50[22] = {};
  put_f16(q50, 1.0f);
  const uint32_t h = 0xAAAAAAAAu;
  std::memcpy(q50 + 2, &h, 4);
  for (int j = 0; j < 16; ++j) q50[6 + j] = static_cast<uint8_t>(j | (j << 4));
  dequantize_row(TensorType::Q5_0, q50, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>((j % 16) + (j % 2 ? 16 : 0) - 16)) << j;
  // IQ4_NL: index j -> level j.
  uint8_t nl[18];
  put_f16(nl, 2.0f);
  for (int j = 0; j < 16; ++j) nl[2 + j] = static_cast<uint8_t>(j | (j << 4));
  dequantize_row(TensorType::IQ4_NL, nl, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 2.0f * static_cast<float>(kLevels[j % 16])) << j;
  // Q3_K: all scale fields 33 (s = 1), d = 1, low bits 3, high bits clear: 3 - 4 = -1.
  uint8_t q3[110] = {};
  for (int k = 0; k < 8; ++k) q3[96 + k] = 0x11;  // low nibbles 1 for all sixteen
  for (int k = 8; k < 12; ++k) q3[96 + k] = 0xAA;  // high pairs 2: 1 | 2 << 4 = 33
  std::memset(q3 + 32, 0xFF, 64);
  put_f16(q3 + 108, 1.0f);
  dequantize_row(TensorType::Q3_K, q3, y, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], -1.0f) << e;
  q3[5] = 1 << 2;  // value 5 + 32 * 2 = 69: third bit set -> 3
  dequantize_row(TensorType::Q3_K, q3, y, 256);
  EXPECT_EQ(y[69], 3.0f);
  // Q2_K: scale 3, min 1 everywhere, d = 0.25, dmin = 1: value 2 -> 1.5 - 1.
  uint8_t q2[84] = {};
  std::memset(q2, 0x13, 16);
  std::memset(q2 + 16, 0xAA, 64);
  put_f16(q2 + 80, 0.25f);
  put_f16(q2 + 82, 1.0f);
  dequantize_row(TensorType::Q2_K, q2, y, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f) << e;
}

TEST(TensorTypes, RandomBlocksDecodeAsTheLayoutSaysBitForBit) {
  for (const Scales& s : kQuantized) {
    const TypeInfo& t = traits(s.type);
    const size_t blocks = 2048 / t.block_elems * 4;
    const Bytes b = random_blocks(s, blocks, 7 + static_cast<uint32_t>(s.type));
    std::vector<float> y(blocks * t.block_elems);
    dequantize_row(s.type, b.data(), y.data(), y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      const float want = decode(s.type, b.data() + i / t.block_elems * t.block_bytes, static_cast<int>(i % t.block_elems));
      ASSERT_EQ(bits(y[i]), bits(want)) << t.name << " value " << i;
    }
  }
}

// The fields (codes, scales, mins, d) give every value back: x = (d * s) * w - dmin * m for
// the Q8_K kinds, w * d (+ m) for the Q8_0 kinds, with ggml's association.
TEST(TensorTypes, IntegerFieldsReproduceTheDecoderBitForBit) {
  for (const Scales& s : kQuantized) {
    const TypeInfo& t = traits(s.type);
    const IntFormat& f = t.format;
    const Bytes b = random_blocks(s, 64, 11);
    std::vector<float> y(64 * t.block_elems);
    dequantize_row(s.type, b.data(), y.data(), y.size());
    for (size_t blk = 0; blk < 64; ++blk) {
      BlockFields bf;
      t.fields(b.data() + blk * t.block_bytes, bf);
      for (size_t e = 0; e < t.block_elems; ++e) {
        ASSERT_LT(bf.code[e], f.bits == 8 ? 256 : 1 << f.bits) << t.name;
        const int w = f.nonlinear ? kLevels[bf.code[e]] : bf.code[e] - f.offset;
        const float d = fp16_to_fp32(bf.d), dmin = fp16_to_fp32(bf.dmin);
        float want = 0;
        if (f.act == ActKind::Q8_K) {
          const size_t j = e / static_cast<size_t>(f.sub);
          want = d * static_cast<float>(bf.scale[j]) * static_cast<float>(w);
          if (f.has_min) want = want - dmin * static_cast<float>(bf.min[j]);
        } else {
          want = f.nonlinear ? d * static_cast<float>(w) : static_cast<float>(w) * d;
          if (f.has_min) want = want + dmin;
        }
        ASSERT_EQ(bits(y[blk * t.block_elems + e]), bits(want)) << t.name << " block " << blk << " value " << e;
      }
    }
  }
}

std::vector<float> normal(size_t n, uint32_t seed, float mean = 0.0f, float std = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, std);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Encoders: the error of each value is within a per-type number of the block's natural
// steps (amax / levels for the symmetric types, span / levels for the affine ones); an
// all-zero block decodes to zeros; normal data's RMS error falls with the bits.
TEST(TensorTypes, EncodersRoundTripWithinTheirSteps) {
  struct Bound {
    TensorType type;
    double steps_of_amax;  // |error| <= this * amax of the 32-value group
  };
  // Q4_0/IQ4: 4 bits over 2 * amax (error up to a step, amax/8 at the clipped end);
  // Q5_x: 1/16; K-quants: their sub-block grids (plus the clipping the fits allow).
  const Bound bounds[] = {{TensorType::Q4_0, 1.0 / 8},  {TensorType::Q4_1, 1.0 / 15}, {TensorType::Q5_0, 1.0 / 16},
                          {TensorType::Q5_1, 1.0 / 31}, {TensorType::Q8_0, 1.0 / 127}, {TensorType::IQ4_NL, 0.2},
                          {TensorType::Q2_K, 0.9},      {TensorType::Q3_K, 0.45},     {TensorType::Q4_K, 0.2},
                          {TensorType::Q5_K, 0.1},      {TensorType::Q6_K, 0.05},     {TensorType::IQ4_XS, 0.25}};
  std::vector<float> x = normal(4096, 5);
  std::fill(x.begin() + 512, x.begin() + 768, 0.0f);  // an all-zero super-block
  for (size_t i = 1024; i < 1280; ++i) x[i] = 1e-2f * x[i];
  for (size_t i = 1280; i < 1536; ++i) x[i] = 3.0f + 0.1f * x[i];  // offset data
  double prev_rms = 1e9;
  for (const Bound& bd : bounds) {
    const TypeInfo& t = traits(bd.type);
    Bytes q(row_bytes(bd.type, x.size()));
    quantize_row(bd.type, x.data(), q.data(), x.size());
    std::vector<float> y(x.size());
    dequantize_row(bd.type, q.data(), y.data(), y.size());
    double se = 0;
    for (size_t g = 0; g < x.size(); g += 32) {
      double amax = 0, lo = 0, hi = 0;
      for (size_t i = g; i < g + 32; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        lo = std::min(lo, static_cast<double>(x[i]));
        hi = std::max(hi, static_cast<double>(x[i]));
      }
      for (size_t i = g; i < g + 32; ++i) {
        const double err = std::fabs(static_cast<double>(y[i]) - x[i]);
        // K-quant super-scales are shared by 256 values: allow the largest group's step.
        const double scale = t.block_elems == 256 ? std::max(amax, hi - lo) * 1.0 : amax;
        ASSERT_LE(err, bd.steps_of_amax * scale * 1.05 + 1e-6) << t.name << " value " << i << " x " << x[i];
        se += err * err;
      }
    }
    for (size_t i = 512; i < 768; ++i) ASSERT_EQ(y[i], 0.0f) << t.name << " zero block";
    const double rms = std::sqrt(se / static_cast<double>(x.size()));
    if (bd.type == TensorType::Q2_K || bd.type == TensorType::Q3_K || bd.type == TensorType::Q4_K ||
        bd.type == TensorType::Q5_K || bd.type == TensorType::Q6_K) {
      EXPECT_LT(rms, prev_rms) << t.name << ": more bits, less error";
      prev_rms = rms;
    }
  }
}

TEST(TensorTypes, LengthsAndNonFiniteValuesAreErrors) {
  const std::vector<float> x(300, 1.0f);
  Bytes q(1024);
  EXPECT_THROW(quantize_row(TensorType::Q4_K, x.data(), q.data(), 300), Error);
  EXPECT_THROW(quantize_row(TensorType::Q5_1, x.data(), q.data(), 48), Error);
  std::vector<float> bad(256, 0.5f);
  bad[17] = NAN;
  for (const Scales& s : kQuantized) EXPECT_THROW(quantize_row(s.type, bad.data(), q.data(), 256), Error) << traits(s.type).name;
  bad[17] = INFINITY;
  EXPECT_THROW(quantize_row(TensorType::IQ4_XS, bad.data(), q.data(), 256), Error);
}

// NaN and infinite scales (a corrupt or hostile file) decode to NaN / inf, never crash.
TEST(TensorTypes, NonFiniteScalesDecodeWithoutFault) {
  for (const Scales& s : kQuantized) {
    const TypeInfo& t = traits(s.type);
    Bytes b = random_blocks(s, 2, 3);
    b[static_cast<size_t>(s.d_at)] = 0xFF;  // 0x7FFF / 0xFFFF: NaN
    b[static_cast<size_t>(s.d_at) + 1] = 0x7F;
    std::vector<float> y(2 * t.block_elems);
    dequantize_row(s.type, b.data(), y.data(), y.size());
    bool any_nan = false;
    for (size_t i = 0; i < t.block_elems; ++i) any_nan = any_nan || std::isnan(y[i]);
    EXPECT_TRUE(any_nan) << t.name;
  }
}

}  // namespace
}  // namespace h2o
