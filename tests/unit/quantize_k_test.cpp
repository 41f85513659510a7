// Q4_K / Q6_K encoders (format/quantize_k.cpp, reached through quantize_row): what they
// write decodes (dequantize_row, and a block reader written here from the layout) to
// values close to the input, with error bounds per block; edge cases stay finite.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/tensor_type.h"

namespace h2o {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes quantize(TensorType t, const std::vector<float>& x) {
  Bytes q(row_bytes(t, x.size()));
  quantize_row(t, x.data(), q.data(), x.size());
  return q;
}

std::vector<float> round_trip(TensorType t, const std::vector<float>& x) {
  const Bytes q = quantize(t, x);
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), x.size());
  return y;
}

float f16_at(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// The grid a sub-block's values lie on: value = step * q - offset, q in [q_lo, q_hi].
// `fp16_slack` is how far the grid's ends may have moved because the super-scales are
// stored as fp16 (half an fp16 ulp of d, times the multiple of it at the grid's far end):
// about 1.6% of a step for normal fp16, but whole steps once d is a subnormal fp16
// (below 6.1e-5, e.g. Q6_K's d = amax/4096 for data of magnitude 1e-3).
struct Grid {
  float step = 0;
  float offset = 0;
  int q_lo = 0, q_hi = 0;
  float fp16_slack = 0;
};

// Half the fp16 ulp at |v|: 2^-11 relative for normal halves, 2^-25 absolute below 2^-14.
float half_f16_ulp(float v) { return std::max(std::fabs(v) * 0x1p-11f, 0x1p-25f); }

// Q4_K sub-block j (32 values) of the block at b, read from the layout (docs/formats.md):
// 6-bit scale and min, directly in bytes 4+j / 8+j for j < 4, else split into a nibble
// of byte 12+(j-4) and the top two bits of bytes 4+(j-4) / 4+j.
Grid q4_k_grid(const uint8_t* b, size_t j) {
  const uint8_t* s = b + 4;
  int sc = 0, m = 0;
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
  const float d = f16_at(b), dmin = f16_at(b + 2);
  return {d * static_cast<float>(sc), dmin * static_cast<float>(m), 0, 15,
          15.0f * static_cast<float>(sc) * half_f16_ulp(d) + static_cast<float>(m) * half_f16_ulp(dmin)};
}

// Q6_K sub-block j (16 values): int8 scale at 192+j, fp16 d at 208, q in [-32, 31].
Grid q6_k_grid(const uint8_t* b, size_t j) {
  const auto sc = static_cast<int8_t>(b[192 + j]);
  const float d = f16_at(b + 208);
  return {d * static_cast<float>(sc), 0.0f, -32, 31, 32.0f * std::fabs(static_cast<float>(sc)) * half_f16_ulp(d)};
}

// Error bounds for normal data, per value, in steps of its sub-block's stored grid, on top
// of the fp16 slack above:
// - Both encoders finish by rounding each value to the nearest level of the grid the
//   decoder will use (checked exactly below), so a value inside the grid's range errs by
//   at most half a step.
// - Values beyond the range are clipped. The range may fall short of the data because
//   (a) the least-squares fit may narrow the grid to trade the extremes' error for the
//   others': Q4_K's trial grids span down to nmax-1 = 14 steps over the data's span, so
//   up to 1 step; Q6_K's down to 31.1 steps for a 32-step half, so ~0.1 step (the refit
//   scale adds a little);
//   (b) the fitted scale is rounded to a 6-bit (Q4_K) or 8-bit (Q6_K) multiple of d, a
//   relative error of 1/(2 sc) at the grid's far end: 15/(2 sc) steps with sc >= 32 for
//   Q4_K (sub-blocks of normal data have similar spreads), 32/(2|sc|) with |sc| >= 40
//   for Q6_K.
// So Q4_K: 0.5 + 1 + 0.25 = 1.75 steps; Q6_K: 0.5 + 0.1 + 0.4 = 1.0 step. Measured on
// the data below: 0.93 and 0.68.
struct KType {
  TensorType type;
  size_t sub;  // values per sub-block
  Grid (*grid)(const uint8_t*, size_t);
  float max_error_steps;
};
const KType kQ4K{TensorType::Q4_K, 32, q4_k_grid, 1.75f};
const KType kQ6K{TensorType::Q6_K, 16, q6_k_grid, 1.0f};

// Checks, for every value, that the encoder picked the grid level nearest to x (the last
// step of both ggml encoders), that the decoder's value is exactly that level, and
// returns the largest error, less the grid's fp16 slack, in units of its sub-block's step
// (0 where the step is 0).
float check_nearest_levels(const KType& k, const std::vector<float>& x) {
  const Bytes q = quantize(k.type, x);
  std::vector<float> y(x.size());
  dequantize_row(k.type, q.data(), y.data(), x.size());
  const size_t block_bytes = traits(k.type).block_bytes;
  float worst_steps = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const Grid g = k.grid(q.data() + (i / 256) * block_bytes, (i % 256) / k.sub);
    EXPECT_TRUE(std::isfinite(y[i])) << i;
    float best = INFINITY;
    bool on_grid = false;
    for (int l = g.q_lo; l <= g.q_hi; ++l) {
      const float level = g.step * static_cast<float>(l) - g.offset;
      best = std::min(best, std::fabs(level - x[i]));
      on_grid = on_grid || level == y[i];
    }
    EXPECT_TRUE(on_grid) << traits(k.type).name << " value " << i << " decodes to " << y[i] << ", off its grid";
    // Division by the step may round x onto the other side of a midpoint: allow a few ulps.
    const float slack = 1e-5f * (std::fabs(x[i]) + std::fabs(g.offset) + std::fabs(g.step));
    EXPECT_LE(std::fabs(y[i] - x[i]), best + slack) << traits(k.type).name << " value " << i;
    if (g.step != 0) {
      worst_steps = std::max(worst_steps, (std::fabs(y[i] - x[i]) - g.fp16_slack) / std::fabs(g.step));
    }
  }
  return worst_steps;
}

// The largest error in units of the naive step of its sub-block's data (see below).
float worst_data_steps(const KType& k, const std::vector<float>& x) {
  const std::vector<float> y = round_trip(k.type, x);
  float worst = 0;
  for (size_t s0 = 0; s0 < x.size(); s0 += k.sub) {
    float lo = 0, hi = 0, amax = 0;
    for (size_t i = s0; i < s0 + k.sub; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
      amax = std::max(amax, std::fabs(x[i]));
    }
    const float step = k.type == TensorType::Q4_K ? (hi - lo) / 15.0f : amax / 32.0f;
    for (size_t i = s0; i < s0 + k.sub; ++i) worst = std::max(worst, std::fabs(y[i] - x[i]) / step);
  }
  return worst;
}

std::vector<float> normal(size_t n, float mean, float std, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, std);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

float rms_error(TensorType t, const std::vector<float>& x) {
  const std::vector<float> y = round_trip(t, x);
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += static_cast<double>(y[i] - x[i]) * (y[i] - x[i]);
  return static_cast<float>(std::sqrt(sum / static_cast<double>(x.size())));
}

TEST(QuantizeK, RoundTripIsTheNearestLevelAndWithinStepBounds) {
  for (const KType& k : {kQ4K, kQ6K}) {
    for (float scale : {1e-3f, 0.02f, 1.0f, 30.0f}) {
      for (uint32_t seed : {1u, 2u, 3u}) {
        SCOPED_TRACE(::testing::Message() << traits(k.type).name << " scale " << scale << " seed " << seed);
        const std::vector<float> x = normal(16 * 256, 0.0f, scale, seed);
        const float worst = check_nearest_levels(k, x);
        EXPECT_LE(worst, k.max_error_steps);
        // And against the data alone: the naive grid's step is the sub-block's span
        // (max - min(min, 0)) over 15 levels for Q4_K, its largest magnitude over 32 for
        // Q6_K; the fitted grid's step is within a few percent of that (trial grids of
        // 14..16 steps, 31.1..32.9 for Q6_K), so the same bounds hold, give or take 1/15.
        // Not at 1e-3, where Q6_K's d is a subnormal fp16 and its slack dominates.
        if (scale >= 0.02f) EXPECT_LE(worst_data_steps(k, x), k.max_error_steps * 16.0f / 15.0f);
      }
    }
  }
}

TEST(QuantizeK, RmsErrorAgainstQ4_0AndQ8_0) {
  for (float scale : {0.02f, 1.0f}) {
    SCOPED_TRACE(::testing::Message() << "scale " << scale);
    const std::vector<float> x = normal(64 * 256, 0.0f, scale, 11);
    const float q4_0 = rms_error(TensorType::Q4_0, x), q8_0 = rms_error(TensorType::Q8_0, x);
    const float q4_k = rms_error(TensorType::Q4_K, x), q6_k = rms_error(TensorType::Q6_K, x);
    std::printf("[ rms/sigma ] Q4_0 %.5f  Q4_K %.5f  Q6_K %.5f  Q8_0 %.5f\n", static_cast<double>(q4_0 / scale),
                static_cast<double>(q4_k / scale), static_cast<double>(q6_k / scale),
                static_cast<double>(q8_0 / scale));
    // Six bits instead of four: about four times finer steps.
    EXPECT_LT(q6_k, 0.4f * q4_0);
    // Q4_K spends its extra bits on an offset and finer scales: no worse than Q4_0.
    EXPECT_LE(q4_k, 1.05f * q4_0);
    EXPECT_LT(q8_0, q6_k);
    // A plausibility floor: uniform rounding error of a 16-level grid over ~6 sigma.
    EXPECT_GT(q4_k, 0.02f * scale);
  }
}

TEST(QuantizeK, AllZerosDecodeToZeros) {
  const std::vector<float> x(512, 0.0f);
  for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K}) {
    const Bytes q = quantize(t, x);
    const std::vector<float> y = round_trip(t, x);
    for (float v : y) ASSERT_EQ(v, 0.0f) << traits(t).name;
    if (t == TensorType::Q6_K) EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == 0; }));
  }
}

TEST(QuantizeK, ConstantBlocks) {
  for (float c : {1.0f, -1.0f, 0.37f, -250.0f, 4.0f}) {
    const std::vector<float> x(256, c);
    for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K}) {
      const std::vector<float> y = round_trip(t, x);
      // One level (Q6_K) or the offset (Q4_K, c < 0) or the top level (Q4_K, c > 0) holds
      // c up to the fp16 rounding of the super-scale and its 6/8-bit multiple.
      for (float v : y) ASSERT_NEAR(v, c, std::fabs(c) * 2e-3f) << traits(t).name << " c " << c;
    }
  }
}

TEST(QuantizeK, AllNegativeAndShiftedData) {
  for (float mean : {-3.0f, 5.0f}) {
    SCOPED_TRACE(::testing::Message() << "mean " << mean);
    const std::vector<float> x = normal(8 * 256, mean, 0.5f, 21);  // 6 sigma from 0
    if (mean < 0) {
      ASSERT_TRUE(std::all_of(x.begin(), x.end(), [](float v) { return v < 0; }));
    }
    for (const KType& k : {kQ4K, kQ6K}) EXPECT_LE(check_nearest_levels(k, x), k.max_error_steps);
    // Q4_K's offset moves its 16 levels onto the data; Q6_K's grid is symmetric about 0,
    // so it spends its levels on [-|max|, |max|]. Either way a few percent of |mean|+3.
    for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K}) {
      const std::vector<float> y = round_trip(t, x);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 0.15f * (std::fabs(mean) + 3.0f)) << i;
    }
  }
}

TEST(QuantizeK, OneHugeOutlier) {
  std::vector<float> x = normal(256, 0.0f, 1.0f, 5);
  x[77] = 1000.0f;
  for (const KType& k : {kQ4K, kQ6K}) {
    SCOPED_TRACE(traits(k.type).name);
    check_nearest_levels(k, x);
    const std::vector<float> y = round_trip(k.type, x);
    // The outlier sets its sub-block's scale and is kept to within one of its steps.
    EXPECT_NEAR(y[77], 1000.0f, 1000.0f / (k.type == TensorType::Q4_K ? 15.0f : 32.0f));
    // The other sub-blocks' scales are coarse multiples of the outlier's (the known
    // weakness of one super-scale per 256 values): their values may collapse onto the
    // offset or zero, but never err by more than the data's own spread.
    for (size_t i = 0; i < x.size(); ++i) {
      if (i == 77) continue;
      ASSERT_TRUE(std::isfinite(y[i]));
      ASSERT_LE(std::fabs(y[i] - x[i]), 8.0f) << i;
    }
  }
}

TEST(QuantizeK, ExactlyRepresentableValuesRoundTrip) {
  std::mt19937 rng(9);
  // Q4_K: every 32-value sub-block is s*(q - 4), q in 0..15 with both ends present, and
  // s = 63/64 so that the super-scales s/63 and 4s/63 are powers of two (exact in fp16).
  {
    const float s = 63.0f / 64.0f;
    std::vector<float> x(512);
    for (size_t j = 0; j < x.size() / 32; ++j) {
      for (size_t l = 0; l < 32; ++l) {
        const int q = l == 0 ? 0 : l == 1 ? 15 : static_cast<int>(rng() % 16);
        x[32 * j + l] = s * static_cast<float>(q - 4);
      }
    }
    const std::vector<float> y = round_trip(TensorType::Q4_K, x);
    // The least-squares fit reproduces s and 4s up to float rounding.
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-5f) << i;
  }
  // Q6_K: integers in [-32, 31] with -32 in every 16-value sub-block: scale 1 everywhere,
  // stored as d = -1/128 and sub-block scales -128, both exact.
  {
    std::vector<float> x(512);
    for (size_t j = 0; j < x.size() / 16; ++j) {
      for (size_t l = 0; l < 16; ++l)
        x[16 * j + l] = l == 3 ? -32.0f : static_cast<float>(static_cast<int>(rng() % 64) - 32);
    }
    const std::vector<float> y = round_trip(TensorType::Q6_K, x);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], x[i]) << i;
  }
}

TEST(QuantizeK, RowsMustBeWholeSuperBlocks) {
  const std::vector<float> x(288, 1.0f);
  Bytes q(1024);
  EXPECT_THROW(quantize_row(TensorType::Q4_K, x.data(), q.data(), 288), Error);
  EXPECT_THROW(quantize_row(TensorType::Q6_K, x.data(), q.data(), 32), Error);
}

TEST(QuantizeK, BlocksAreIndependent) {
  // A row quantizes block by block: each 256-value block encodes as it would alone.
  const std::vector<float> x = normal(3 * 256, 0.5f, 2.0f, 13);
  for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K}) {
    const Bytes whole = quantize(t, x);
    const size_t bb = traits(t).block_bytes;
    for (size_t b = 0; b < 3; ++b) {
      const std::vector<float> part(x.begin() + static_cast<std::ptrdiff_t>(256 * b),
                                    x.begin() + static_cast<std::ptrdiff_t>(256 * (b + 1)));
      const Bytes alone = quantize(t, part);
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), whole.begin() + static_cast<std::ptrdiff_t>(bb * b)))
          << traits(t).name << " block " << b;
    }
  }
}

}  // namespace
}  // namespace h2o
