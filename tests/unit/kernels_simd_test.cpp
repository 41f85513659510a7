// Every SIMD kernel against its scalar reference, on every target this CPU runs:
//   bit for bit where the order is the same (dot_f32, axpy_f32, Q8 quantization, the
//   quantized products, the float products on targets with fused multiply-add), within
//   per-type tolerances of the original float code (matmul_reference) otherwise.
// Also: results do not depend on the token count (GEMM tiles vs one token) or threads.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "format/packed_quant.h"
#include "format/tensor_type.h"
#include "format/types/int_dot.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/reference.h"
#include "format/matrix.h"

namespace h2o {
namespace {

std::vector<SimdTarget> simd_targets() {
  std::vector<SimdTarget> v;
  for (const auto& t : available_simd_targets()) {
    if (!t.is_reference()) v.push_back(t);
  }
  return v;
}

// Targets whose MulAdd is a fused multiply-add (Highway's AVX2 target and above).
bool has_fma(const SimdTarget& t) { return t.name == "avx2" || t.name == "avx3" || t.name == "avx3_dl"; }

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
};

bool is_quantized(TensorType t) { return traits(t).format.act != ActKind::Float; }

// The quantized types, and an fp16 scale field of each (set to a sane value in random blocks).
struct QuantType {
  TensorType type;
  size_t d_at, dmin_at;  // dmin_at 0: none
};
const QuantType kQuantTypes[] = {
    {TensorType::Q4_0, 0, 0}, {TensorType::Q4_1, 0, 2},   {TensorType::Q5_0, 0, 0},    {TensorType::Q5_1, 0, 2},
    {TensorType::Q8_0, 0, 0}, {TensorType::IQ4_NL, 0, 0}, {TensorType::Q2_K, 80, 82},  {TensorType::Q3_K, 108, 0},
    {TensorType::Q4_K, 0, 2}, {TensorType::Q5_K, 0, 2},   {TensorType::Q6_K, 208, 0},  {TensorType::IQ4_XS, 0, 0},
};

// A rows x cols matrix: float types and `encoded` quantized ones from normal data through
// the encoders; otherwise random bytes (every code, scale and min, the extremes included)
// with sane fp16 super-scales.
OwnedMatrix random_matrix(TensorType type, int rows, int cols, uint32_t seed, bool encoded = false) {
  std::mt19937 rng(seed);
  OwnedMatrix o;
  o.m.type = type;
  o.m.rows = rows;
  o.m.cols = cols;
  o.m.row_bytes = row_bytes(type, static_cast<size_t>(cols));
  o.bytes.resize(o.m.row_bytes * static_cast<size_t>(rows));
  if (is_quantized(type) && !encoded) {
    for (auto& b : o.bytes) b = static_cast<uint8_t>(rng());
    const QuantType* q = nullptr;
    for (const auto& k : kQuantTypes) q = k.type == type ? &k : q;
    const size_t block = traits(type).block_bytes;
    std::uniform_real_distribution<float> u(-0.004f, 0.004f);
    for (size_t off = 0; off < o.bytes.size(); off += block) {
      const uint16_t d = fp32_to_fp16(u(rng)), dmin = fp32_to_fp16(u(rng));
      std::memcpy(&o.bytes[off + q->d_at], &d, 2);
      if (q->dmin_at != 0) std::memcpy(&o.bytes[off + q->dmin_at], &dmin, 2);
    }
  } else {
    const auto values = random_floats(static_cast<size_t>(rows) * static_cast<size_t>(cols), seed, 0.1f);
    for (int r = 0; r < rows; ++r) {
      quantize_row(type, values.data() + static_cast<size_t>(r) * static_cast<size_t>(cols),
                   o.bytes.data() + static_cast<size_t>(r) * o.m.row_bytes, static_cast<size_t>(cols));
    }
  }
  o.m.data = o.bytes.data();
  return o;
}

std::vector<float> decode(const Matrix& m, int r) {
  std::vector<float> row(static_cast<size_t>(m.cols));
  dequantize_row(m.type, m.row(r), row.data(), row.size());
  return row;
}

std::vector<float> run_matmul(const KernelTable& k, const Matrix& w, const std::vector<float>& x, int tokens,
                              int threads = 1) {
  ThreadPool pool(threads);
  std::vector<float> out(static_cast<size_t>(tokens) * static_cast<size_t>(w.rows));
  matmul(k, w, x.data(), tokens, out.data(), pool);
  return out;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// ---------------------------------------------------------------- attention kernels

TEST(KernelSimd, DotF32MatchesTheReferenceBitForBit) {
  const auto a = random_floats(1100, 1), b = random_floats(1100, 2);
  for (const auto& t : available_simd_targets()) {
    const KernelTable& k = kernels_for(t);
    for (size_t n : {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64, 100, 128, 1000, 1100}) {
      EXPECT_EQ(bits(k.dot_f32(a.data(), b.data(), n)), bits(dot_f32_reference(a.data(), b.data(), n)))
          << t.name << " n=" << n;
    }
  }
}

TEST(KernelSimd, GatheredRowFormsMatchTheSingleCallsBitForBit) {
  const auto rows = random_floats(40 * 100, 3), q = random_floats(100, 4), p = random_floats(40, 5);
  const std::vector<uint32_t> idx = {3, 0, 39, 7, 7, 12, 25, 1, 38, 2, 19, 20, 5};
  for (const auto& t : available_simd_targets()) {
    const KernelTable& k = kernels_for(t);
    for (size_t n : {0, 1, 7, 8, 16, 31, 32, 63, 64, 65, 100}) {
      for (size_t m : {size_t{0}, size_t{1}, size_t{5}, idx.size()}) {
        std::vector<float> out(m), want_out(m);
        k.dot_rows_f32(q.data(), rows.data(), idx.data(), m, n, out.data());
        std::vector<float> y(n, 0.25f), want_y(n, 0.25f);
        k.axpy_rows_f32(p.data(), rows.data(), idx.data(), m, n, y.data());
        for (size_t j = 0; j < m; ++j) {
          want_out[j] = dot_f32_reference(q.data(), rows.data() + idx[j] * n, n);
          axpy_f32_reference(p[j], rows.data() + idx[j] * n, want_y.data(), n);
        }
        for (size_t j = 0; j < m; ++j) EXPECT_EQ(bits(out[j]), bits(want_out[j])) << t.name << " n=" << n << " j=" << j;
        for (size_t i = 0; i < n; ++i) EXPECT_EQ(bits(y[i]), bits(want_y[i])) << t.name << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(KernelSimd, AxpyMatchesTheReferenceBitForBit) {
  const auto x = random_floats(300, 3), y0 = random_floats(300, 4);
  for (const auto& t : available_simd_targets()) {
    for (size_t n : {0, 1, 5, 8, 16, 17, 64, 299}) {
      auto y = y0, want = y0;
      kernels_for(t).axpy_f32(0.37f, x.data(), y.data(), n);
      axpy_f32_reference(0.37f, x.data(), want.data(), n);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(want[i])) << t.name << " n=" << n << " i=" << i;
    }
  }
}

// ---------------------------------------------------------------- softmax

// Distance in units in the last place between two non-negative finite floats (their bit
// patterns are ordered like their values).
int64_t ulps(float a, float b) { return std::abs(static_cast<int64_t>(bits(a)) - static_cast<int64_t>(bits(b))); }

TEST(KernelSimd, ExpIsWithinTwoUlpOfExpInDoubleDownToTheSubnormals) {
  // Every 97th float bit pattern in [-104, 89] (both signs' ranges), and the edges.
  int64_t worst = 0;
  float worst_at = 0.0f;
  const auto check = [&](float x) {
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    const float got = exp_f32_reference(x);
    ASSERT_TRUE(std::isfinite(got) || std::isinf(want)) << x;
    const int64_t e = ulps(got, want);
    if (e > worst) worst = e, worst_at = x;
  };
  for (uint32_t b = 0; b <= bits(89.0f); b += 97) check(std::bit_cast<float>(b));
  for (uint32_t b = 0x80000000u; b <= bits(-104.0f); b += 97) check(std::bit_cast<float>(b));
  for (float x : {0.0f, -0.0f, 1.0f, -1.0f, 88.7f, -87.3f, -100.0f, -103.9f}) check(x);
  EXPECT_LE(worst, 2) << "at x = " << worst_at;
  EXPECT_EQ(exp_f32_reference(0.0f), 1.0f);
  EXPECT_EQ(exp_f32_reference(-105.0f), 0.0f);
  EXPECT_EQ(exp_f32_reference(-INFINITY), 0.0f);
  EXPECT_GT(exp_f32_reference(-100.0f), 0.0f);  // subnormal, not flushed
  EXPECT_TRUE(std::isinf(exp_f32_reference(90.0f)));
  EXPECT_TRUE(std::isinf(exp_f32_reference(INFINITY)));
  EXPECT_TRUE(std::isnan(exp_f32_reference(NAN)));
}

TEST(KernelSimd, SoftmaxMatchesTheReferenceBitForBitAndSumsToOne) {
  for (const auto& t : available_simd_targets()) {
    const KernelTable& k = kernels_for(t);
    for (size_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 410, 1029}) {
      // Logits of attention's spread, and some far below the maximum (subnormal and zero
      // probabilities, which the policies' statistics tell apart).
      auto x = random_floats(n, static_cast<uint32_t>(n), 4.0f);
      for (size_t i = 3; i < n; i += 7) x[i] -= 95.0f + static_cast<float>(i % 13);
      auto want = x;
      k.softmax_f32(x.data(), n);
      softmax_f32_reference(want.data(), n);
      double sum = 0.0;
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(bits(x[i]), bits(want[i])) << t.name << " n=" << n << " i=" << i;
        sum += x[i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << t.name << " n=" << n;
    }
    // Infinities and NaN as the scalar code has them: -inf gets probability 0, a NaN
    // makes the row NaN.
    std::vector<float> x = {1.0f, -INFINITY, 2.0f, 0.5f, -INFINITY, 0.0f, 3.0f, -1.0f, 1.0f, -INFINITY};
    auto want = x;
    k.softmax_f32(x.data(), x.size());
    softmax_f32_reference(want.data(), want.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits(x[i]), bits(want[i])) << t.name << " i=" << i;
    EXPECT_EQ(x[1], 0.0f);
    for (size_t n : {3, 12}) {
      std::vector<float> y(n, 0.5f);
      y[1] = NAN;
      k.softmax_f32(y.data(), n);
      for (float v : y) EXPECT_TRUE(std::isnan(v)) << t.name << " n=" << n;
    }
  }
}

TEST(KernelSimd, SwigluMatchesTheReferenceBitForBitAndSiluInDouble) {
  for (const auto& t : available_simd_targets()) {
    const KernelTable& k = kernels_for(t);
    for (size_t n : {1, 7, 8, 15, 16, 17, 33, 100, 2816}) {
      auto gate = random_floats(n, static_cast<uint32_t>(n) + 100, 6.0f);
      const auto up = random_floats(n, static_cast<uint32_t>(n) + 200, 2.0f);
      const float edges[] = {0.0f, -0.0f, 120.0f, -120.0f, 89.5f, -89.5f, INFINITY, NAN};
      for (size_t i = 0; i < n && i < 8; ++i) gate[i * 2 % n] = edges[i];
      auto want = gate;
      const auto before = gate;
      k.swiglu_f32(gate.data(), up.data(), n);
      swiglu_f32_reference(want.data(), up.data(), n);
      for (size_t i = 0; i < n; ++i) {
        if (std::isnan(want[i])) {  // a NaN's sign and payload are not specified by IEEE 754
          ASSERT_TRUE(std::isnan(gate[i])) << t.name << " n=" << n << " i=" << i;
          continue;
        }
        ASSERT_EQ(bits(gate[i]), bits(want[i])) << t.name << " n=" << n << " i=" << i;
        const double g = before[i];
        if (!std::isfinite(g)) continue;
        const double silu = g / (1.0 + std::exp(-g));
        EXPECT_NEAR(gate[i], silu * up[i], 8e-7 * std::fabs(silu * up[i]) + 1e-30) << t.name << " g=" << g;
      }
    }
  }
}

// ---------------------------------------------------------------- activations

std::vector<float> awkward_activations(size_t n) {
  auto x = random_floats(n, 5, 3.0f);
  if (n < 768) return x;
  // Block 0 has max |x| = 127, so x / d = x: exact halves are ties that lround rounds away
  // from zero (Round would go to even). Block 1 is zero; block 2 tiny; block 3 negative max.
  for (size_t j = 0; j < 32; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[31] = 127.0f;
  x[5] = -2.5f;
  x[6] = 0.5f;
  for (size_t j = 32; j < 64; ++j) x[j] = 0.0f;
  for (size_t j = 64; j < 96; ++j) x[j] = 1e-30f * static_cast<float>(j);
  x[100] = -500.0f;
  // Super-block 1 all zero; super-block 2: +7 and -7 both largest (the first one sets the sign).
  for (size_t j = 256; j < 512; ++j) x[j] = 0.0f;
  for (size_t j = 512; j < 768 && j < n; ++j) x[j] *= 0.1f;
  x[600] = 7.0f;
  x[700] = -7.0f;
  return x;
}

TEST(KernelSimd, QuantizeQ8MatchesTheReferenceBitForBit) {
  const auto x = awkward_activations(32 * 40);
  std::vector<int8_t> want_q(x.size());
  std::vector<float> want_d(x.size() / 32);
  std::vector<int32_t> want_sum(x.size() / 32);
  quantize_q8_0_reference(x.data(), x.size(), want_q.data(), want_d.data(), want_sum.data());
  for (size_t b = 0; b < want_sum.size(); ++b) {
    int32_t s = 0;
    for (size_t j = b * 32; j < b * 32 + 32; ++j) s += want_q[j];
    ASSERT_EQ(want_sum[b], s) << "block " << b;
  }
  for (const auto& t : available_simd_targets()) {
    std::vector<int8_t> q(x.size());
    std::vector<float> d(x.size() / 32);
    std::vector<int32_t> sum(x.size() / 32);
    kernels_for(t).quantize_q8(x.data(), x.size(), q.data(), d.data(), sum.data());
    EXPECT_EQ(q, want_q) << t.name;
    EXPECT_EQ(sum, want_sum) << t.name;
    for (size_t b = 0; b < d.size(); ++b) EXPECT_EQ(bits(d[b]), bits(want_d[b])) << t.name << " block " << b;
  }
}

TEST(KernelSimd, QuantizeQ8KMatchesTheReferenceBitForBit) {
  const auto x = awkward_activations(256 * 6);
  const size_t n = x.size();
  std::vector<int8_t> want_q(n);
  std::vector<float> want_d(n / 256);
  std::vector<int16_t> want16(n / 16), want32(n / 32);
  quantize_q8_k_reference(x.data(), n, want_q.data(), want_d.data(), want16.data(), want32.data());
  EXPECT_EQ(want_d[1], 0.0f);
  EXPECT_EQ(want_q[600], -127);  // the first largest value maps to -127
  EXPECT_EQ(want_q[700], 127);
  for (size_t j = 0; j < n / 16; ++j) {
    int s = 0;
    for (size_t k = 16 * j; k < 16 * j + 16; ++k) s += want_q[k];
    ASSERT_EQ(want16[j], s);
  }
  for (const auto& t : available_simd_targets()) {
    std::vector<int8_t> q(n);
    std::vector<float> d(n / 256);
    std::vector<int16_t> s16(n / 16), s32(n / 32);
    kernels_for(t).quantize_q8k(x.data(), n, q.data(), d.data(), s16.data(), s32.data());
    EXPECT_EQ(q, want_q) << t.name;
    EXPECT_EQ(s16, want16) << t.name;
    EXPECT_EQ(s32, want32) << t.name;
    for (size_t b = 0; b < d.size(); ++b) EXPECT_EQ(bits(d[b]), bits(want_d[b])) << t.name << " block " << b;
  }
}

// ---------------------------------------------------------------- matrix products

// Activations quantized by the scalar references, for every token: [tokens][cols] values
// and each kind's scales and sums.
struct QuantRef {
  ActKind kind;
  size_t cols;
  std::vector<int8_t> qs;
  std::vector<float> d;
  std::vector<int32_t> sum;
  std::vector<int16_t> sum16, sum32;
  QuantRef(ActKind k, const std::vector<float>& x, size_t c) : kind(k), cols(c), qs(x.size()) {
    if (k == ActKind::Q8_K) {
      d.resize(x.size() / 256);
      sum16.resize(x.size() / 16);
      sum32.resize(x.size() / 32);
      quantize_q8_k_reference(x.data(), x.size(), qs.data(), d.data(), sum16.data(), sum32.data());
    } else {
      d.resize(x.size() / 32);
      sum.resize(x.size() / 32);
      quantize_q8_0_reference(x.data(), x.size(), qs.data(), d.data(), sum.data());
    }
  }
  Q8Activations token(size_t t) const {
    Q8Activations a;
    a.qs = qs.data() + t * cols;
    if (kind == ActKind::Q8_K) {
      a.d = d.data() + t * cols / 256;
      a.sum16 = sum16.data() + t * cols / 16;
      a.sum32 = sum32.data() + t * cols / 32;
    } else {
      a.d = d.data() + t * cols / 32;
      a.sum = sum.data() + t * cols / 32;
    }
    return a;
  }
};

struct Shape {
  int rows, cols, tokens;
};
// Rows that are not a multiple of any tile, columns with and without a 16-value tail,
// token counts around the tiles, and the GEMM size of a prefill chunk.
const Shape kFloatShapes[] = {{37, 64, 1}, {37, 172, 3}, {19, 200, 9}, {64, 256, 64}, {5, 16, 5}, {3, 8, 2}};

// |out - reference| bound of float rounding: a few ulps of sum |w x| per row.
double float_tolerance(const std::vector<float>& w, const float* x) {
  double s = 0;
  for (size_t i = 0; i < w.size(); ++i) s += std::fabs(static_cast<double>(w[i]) * x[i]);
  return 1e-5 * s + 1e-7;
}

TEST(KernelSimd, FloatProductsFollowTheirLaneOrderAndStayNearTheReference) {
  for (const TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
    for (const Shape& s : kFloatShapes) {
      const auto w = random_matrix(type, s.rows, s.cols, 6);
      const auto x = random_floats(static_cast<size_t>(s.tokens * s.cols), 7);
      const auto ref = run_matmul(kernels_for(*find_simd_target("scalar")), w.m, x, s.tokens);
      for (const auto& t : simd_targets()) {
        const auto out = run_matmul(kernels_for(t), w.m, x, s.tokens);
        for (int r = 0; r < s.rows; ++r) {
          const auto row = decode(w.m, r);
          for (int tok = 0; tok < s.tokens; ++tok) {
            const float* xt = x.data() + static_cast<size_t>(tok * s.cols);
            const size_t at = static_cast<size_t>(tok * s.rows + r);
            const float lanes = dot_f32_fma16_lanes(row.data(), xt, row.size());
            const std::string where = std::string(t.name) + " " + std::string(traits(type).name) + " " +
                                      std::to_string(s.rows) + "x" + std::to_string(s.cols) + " r" + std::to_string(r) +
                                      " t" + std::to_string(tok);
            if (has_fma(t)) {
              ASSERT_EQ(bits(out[at]), bits(lanes)) << where;
            } else {
              ASSERT_NEAR(out[at], lanes, float_tolerance(row, xt)) << where;
            }
            ASSERT_NEAR(out[at], ref[at], float_tolerance(row, xt)) << where;
          }
        }
      }
    }
  }
}

// Bound of the activation quantization error against the float product: each activation
// moves by at most half a step of its group (32 values, fp16 scale; or 256 values).
double quant_tolerance(const std::vector<float>& w, const float* x, size_t group) {
  double bound = 0;
  for (size_t b = 0; b < w.size() / group; ++b) {
    double amax = 0, wsum = 0;
    for (size_t j = b * group; j < b * group + group; ++j) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[j])));
      wsum += std::fabs(static_cast<double>(w[j]));
    }
    bound += wsum * amax / 127.0 * 0.5 * 1.01;  // fp16 rounding of the scale
  }
  return bound + 1e-5 * bound + float_tolerance(w, x);
}

// Every quantized type, on every target: bit for bit dot_reference (the order of
// format/types/int_dot.h) from the same quantized activations; near the float product of
// the decoded weights (matmul_reference) within the activation quantization error; a
// token's outputs the same bits alone as in a batch (tiles, 64-token chunks, pairs of
// groups) and with several threads. Random blocks (every code, scale and min) and encoded
// data.
TEST(KernelSimd, QuantizedProductsMatchTheirReferenceOnEveryTarget) {
  // The last three: every width of the last tile (23 = 8 + 8 + 7, 18 = 8 + 8 + 2, 12 = 8 +
  // 4; on AVX2 20 + 3, 16 + 2, 12) with enough row groups that the second pass over a pair
  // prefetches the next one, and a partial last group.
  const Shape shapes32[] = {{37, 64, 1}, {37, 256, 3},  {19, 96, 9},  {64, 256, 64}, {5, 32, 5},
                            {13, 64, 6}, {21, 160, 70}, {70, 64, 23}, {45, 96, 18},  {40, 64, 12}};
  const Shape shapes256[] = {{21, 512, 3}, {37, 256, 1},  {19, 256, 9},  {64, 512, 64}, {5, 768, 5},
                             {13, 256, 6}, {3, 1024, 70}, {70, 256, 23}, {45, 512, 18}, {40, 256, 12}};
  for (const QuantType& q : kQuantTypes) {
    const TypeInfo& ti = traits(q.type);
    const bool k = ti.format.act == ActKind::Q8_K;
    for (const Shape& s : k ? std::span<const Shape>(shapes256) : std::span<const Shape>(shapes32)) {
      for (const bool encoded : {false, true}) {
        const auto w = random_matrix(q.type, s.rows, s.cols, 10 + static_cast<uint32_t>(s.rows), encoded);
        const auto x = random_floats(static_cast<size_t>(s.tokens * s.cols), 11);
        const auto ref = run_matmul(kernels_for(*find_simd_target("scalar")), w.m, x, s.tokens);
        const QuantRef xq(ti.format.act, x, static_cast<size_t>(s.cols));
        for (const auto& t : simd_targets()) {
          const KernelTable& kt = kernels_for(t);
          const auto out = run_matmul(kt, w.m, x, s.tokens);
          EXPECT_EQ(run_matmul(kt, w.m, x, s.tokens, 3), out) << t.name << " " << ti.name << " threads";
          for (int r = 0; r < s.rows; ++r) {
            const auto row = decode(w.m, r);
            for (int tok = 0; tok < s.tokens; ++tok) {
              const float want = dot_reference(ti, w.m.row(r), xq.token(static_cast<size_t>(tok)), row.size());
              const size_t at = static_cast<size_t>(tok * s.rows + r);
              const std::string where = std::string(t.name) + " " + std::string(ti.name) + " " + std::to_string(s.rows) +
                                        "x" + std::to_string(s.cols) + " r" + std::to_string(r) + " t" +
                                        std::to_string(tok) + (encoded ? " encoded" : " random");
              ASSERT_EQ(bits(out[at]), bits(want)) << where;
              ASSERT_NEAR(out[at], ref[at], quant_tolerance(row, x.data() + tok * s.cols, k ? 256 : 32)) << where;
            }
          }
          for (int tok = 0; tok < s.tokens; tok += 7) {
            const std::vector<float> one(x.begin() + tok * s.cols, x.begin() + (tok + 1) * s.cols);
            const auto single = run_matmul(kt, w.m, one, 1);
            for (int r = 0; r < s.rows; ++r) {
              ASSERT_EQ(bits(single[static_cast<size_t>(r)]), bits(out[static_cast<size_t>(tok * s.rows + r)]))
                  << t.name << " " << ti.name << " token " << tok << " row " << r;
            }
          }
        }
      }
    }
  }
}

// Products sharing one input (matmul_many: activations quantized once per kind, one
// parallel region) give each product the bits matmul() gives it alone: types of both
// activation kinds and a float type in one call, on every target (the scalar reference
// included), with one and three threads. Matrices of another width are refused.
TEST(KernelSimd, ProductsSharingAnInputGiveEachItsOwnBits) {
  const int cols = 256;
  const struct {
    TensorType type;
    int rows;
  } mats[] = {{TensorType::Q8_0, 37}, {TensorType::Q4_K, 21}, {TensorType::F16, 13}, {TensorType::Q6_K, 40},
              {TensorType::Q4_0, 16}};
  std::vector<OwnedMatrix> owned;
  for (const auto& m : mats) owned.push_back(random_matrix(m.type, m.rows, cols, 70 + static_cast<uint32_t>(m.rows)));
  for (int tokens : {1, 5, 23}) {
    const auto x = random_floats(static_cast<size_t>(tokens * cols), 71);
    for (const auto& t : available_simd_targets()) {
      const KernelTable& kt = kernels_for(t);
      for (int threads : {1, 3}) {
        std::vector<std::vector<float>> outs;
        std::vector<MatmulProduct> products;
        for (const auto& o : owned) outs.emplace_back(static_cast<size_t>(tokens * o.m.rows), -1.0f);
        for (size_t i = 0; i < owned.size(); ++i) products.push_back({&owned[i].m, outs[i].data()});
        ThreadPool pool(threads);
        matmul_many(kt, products, x.data(), tokens, pool);
        for (size_t i = 0; i < owned.size(); ++i) {
          const auto alone = run_matmul(kt, owned[i].m, x, tokens);
          ASSERT_EQ(outs[i].size(), alone.size());
          for (size_t j = 0; j < alone.size(); ++j)
            ASSERT_EQ(bits(outs[i][j]), bits(alone[j]))
                << t.name << " " << traits(owned[i].m.type).name << " tokens " << tokens << " threads " << threads;
        }
      }
    }
  }
  const auto narrow = random_matrix(TensorType::Q8_0, 8, 128, 72);
  std::vector<float> x(256), a(37), b(8);
  const MatmulProduct mixed[] = {{&owned[0].m, a.data()}, {&narrow.m, b.data()}};
  ThreadPool pool(1);
  EXPECT_THROW(matmul_many(mixed, x.data(), 1, pool), Error);
}

// Q8_0 matrices with stored -128 (never written by the encoder, valid in a file).
TEST(KernelSimd, Q8_0WithMinus128MatchesTheReference) {
  auto w = random_matrix(TensorType::Q8_0, 19, 128, 3, true);
  for (size_t at = 2; at < w.bytes.size(); at += 34 * 3 + 5) {
    if (at % 34 >= 2) w.bytes[at] = 0x80;
  }
  const auto x = random_floats(19 * 128, 4);
  const QuantRef xq(ActKind::Q8_0, x, 128);
  for (const auto& t : simd_targets()) {
    const auto out = run_matmul(kernels_for(t), w.m, x, 19);
    for (int r = 0; r < 19; ++r) {
      for (size_t tok = 0; tok < 19; ++tok) {
        ASSERT_EQ(bits(out[tok * 19 + static_cast<size_t>(r)]), bits(dot_reference(traits(TensorType::Q8_0), w.m.row(r), xq.token(tok), 128)))
            << t.name << " r" << r << " t" << tok;
      }
    }
  }
}

// The packed layout holds every field of the file's blocks (rows past the matrix zero),
// and a model's pre-packed matrix gives the same bits as the copy matmul packs per call.
TEST(KernelSimd, PackedLayoutKeepsEveryFieldAndMatchesPackingPerCall) {
  for (const QuantType& q : kQuantTypes) {
    const TypeInfo& ti = traits(q.type);
    const int rows = 37, cols = ti.block_elems == 256 ? 768 : 160;
    const auto w = random_matrix(q.type, rows, cols, 14);
    const PackedShape shape = packed_shape(q.type, rows, cols);
    EXPECT_EQ(shape.groups, 5u);
    EXPECT_EQ(shape.group_bytes % 32, 0u);
    AlignedBuffer packed(shape.bytes());
    ThreadPool pool(2);
    pack_matrix(q.type, w.m.data, w.m.row_bytes, rows, cols, packed.data(), pool);
    for (int r = 0; r < 40; ++r) {  // rows 37..39: the last group's padding, all zero
      for (size_t b = 0; b < static_cast<size_t>(cols) / ti.block_elems; ++b) {
        BlockFields want, got;
        if (r < rows) ti.fields(w.m.row(r) + b * ti.block_bytes, want);
        unpack_block(q.type, packed.data(), 40, cols, static_cast<size_t>(r), b, got);
        const std::string where = std::string(ti.name) + " r" + std::to_string(r) + " b" + std::to_string(b);
        ASSERT_EQ(std::memcmp(want.code, got.code, ti.block_elems), 0) << where;
        ASSERT_EQ(std::memcmp(want.scale, got.scale, sizeof(want.scale)), 0) << where;
        ASSERT_EQ(std::memcmp(want.min, got.min, sizeof(want.min)), 0) << where;
        ASSERT_EQ(want.d, got.d) << where;
        ASSERT_EQ(want.dmin, got.dmin) << where;
      }
    }
    Matrix prepacked = w.m;
    prepacked.packed = packed.data();
    const auto x = random_floats(static_cast<size_t>(11 * cols), 15);
    for (const auto& t : simd_targets()) {
      EXPECT_EQ(run_matmul(kernels_for(t), prepacked, x, 11), run_matmul(kernels_for(t), w.m, x, 11)) << t.name;
    }
  }
}

// A token's outputs are the same bits in an 11-token GEMM, one token at a time, and with
// any thread count; and the same on every target with fused multiply-add (float) or on
// every target (quantized).
TEST(KernelSimd, ResultsDoNotDependOnTokenCountThreadsOrTarget) {
  const int rows = 70, cols = 512, tokens = 11;
  const auto x = random_floats(static_cast<size_t>(tokens * cols), 12);
  std::vector<TensorType> types = {TensorType::F32, TensorType::F16, TensorType::BF16};
  for (const QuantType& q : kQuantTypes) types.push_back(q.type);
  for (const TensorType type : types) {
    const auto w = random_matrix(type, rows, cols, 13);
    std::vector<float> first_fma, first_any;
    for (const auto& t : simd_targets()) {
      const KernelTable& k = kernels_for(t);
      const auto batched = run_matmul(k, w.m, x, tokens);
      EXPECT_EQ(run_matmul(k, w.m, x, tokens, 3), batched) << t.name << " threads";
      for (int tok = 0; tok < tokens; ++tok) {
        const std::vector<float> one(x.begin() + tok * cols, x.begin() + (tok + 1) * cols);
        const auto single = run_matmul(k, w.m, one, 1);
        for (int r = 0; r < rows; ++r) {
          ASSERT_EQ(bits(single[static_cast<size_t>(r)]), bits(batched[static_cast<size_t>(tok * rows + r)]))
              << t.name << " " << traits(type).name << " token " << tok << " row " << r;
        }
      }
      const bool quantized = is_quantized(type);
      auto& first = quantized ? first_any : first_fma;
      if (!quantized && !has_fma(t)) continue;
      if (first.empty()) {
        first = batched;
      } else {
        EXPECT_EQ(batched, first) << t.name << " " << traits(type).name;
      }
    }
  }
}

// NaN scales in a weight block (a corrupt file): outputs become NaN, nothing faults.
TEST(KernelSimd, NonFiniteScalesGiveNaNNotAFault) {
  for (const QuantType& q : kQuantTypes) {
    auto w = random_matrix(q.type, 16, traits(q.type).block_elems == 256 ? 256 : 64, 21);
    w.bytes[q.d_at] = 0xFF;
    w.bytes[q.d_at + 1] = 0x7F;
    const auto x = random_floats(w.m.cols * 5, 22);
    for (const auto& t : available_simd_targets()) {
      const auto out = run_matmul(kernels_for(t), w.m, x, 5);
      EXPECT_TRUE(std::isnan(out[0])) << t.name << " " << traits(q.type).name;
    }
  }
}

}  // namespace
}  // namespace h2o
