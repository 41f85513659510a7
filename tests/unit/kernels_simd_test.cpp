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
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/thread_pool.h"
#include "format/packed_quant.h"
#include "format/tensor_type.h"
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

OwnedMatrix random_matrix(TensorType type, int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  OwnedMatrix o;
  o.m.type = type;
  o.m.rows = rows;
  o.m.cols = cols;
  o.m.row_bytes = row_bytes(type, static_cast<size_t>(cols));
  o.bytes.resize(o.m.row_bytes * static_cast<size_t>(rows));
  if (type == TensorType::Q4_K || type == TensorType::Q6_K) {
    // No quantizer for k-quants: random bytes with sane fp16 scales.
    for (auto& b : o.bytes) b = static_cast<uint8_t>(rng());
    const size_t block = traits(type).block_bytes;
    const uint16_t d = fp32_to_fp16(0.002f);
    for (size_t off = 0; off < o.bytes.size(); off += block) {
      std::memcpy(&o.bytes[off + (type == TensorType::Q4_K ? 0 : 208)], &d, 2);
      if (type == TensorType::Q4_K) std::memcpy(&o.bytes[off + 2], &d, 2);
    }
  } else {
    const auto values = random_floats(static_cast<size_t>(rows) * static_cast<size_t>(cols), seed, 0.1f);
    for (int r = 0; r < rows; ++r) {
      quantize_row(type, values.data() + static_cast<size_t>(r) * static_cast<size_t>(cols),
                   o.bytes.data() + static_cast<size_t>(r) * o.m.row_bytes, static_cast<size_t>(cols));
    }
    if (type == TensorType::Q8_0) {
      // -128 never comes out of the quantizer but is a valid stored value (other
      // writers, hostile files): the packed kernels must handle it exactly.
      for (size_t at = 2; at < o.bytes.size(); at += 34 * 3 + 5) {
        if (at % 34 >= 2) o.bytes[at] = 0x80;
      }
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

// ---------------------------------------------------------------- Q8_0 activations

TEST(KernelSimd, QuantizeQ8MatchesQuantizeRowBitForBit) {
  auto x = random_floats(32 * 40, 5, 3.0f);
  // Block 0 has max |x| = 127, so x / d = x: exact halves are ties that lround rounds away
  // from zero (Round would go to even). Block 1 is zero; block 2 tiny; block 3 negative max.
  for (size_t j = 0; j < 32; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[31] = 127.0f;
  x[5] = -2.5f;
  x[6] = 0.5f;
  for (size_t j = 32; j < 64; ++j) x[j] = 0.0f;
  for (size_t j = 64; j < 96; ++j) x[j] = 1e-30f * static_cast<float>(j);
  x[100] = -500.0f;
  std::vector<int8_t> want_q(x.size());
  std::vector<float> want_d(x.size() / 32);
  std::vector<int32_t> want_sum(x.size() / 32);
  quantize_q8_reference(x.data(), x.size(), want_q.data(), want_d.data(), want_sum.data());
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

// ---------------------------------------------------------------- matrix products

// Activations quantized by the scalar reference: values [tokens][cols], scales and block
// sums [tokens][cols / 32].
struct Q8Reference {
  std::vector<int8_t> qs;
  std::vector<float> d;
  std::vector<int32_t> sum;
  explicit Q8Reference(const std::vector<float>& x) : qs(x.size()), d(x.size() / 32), sum(x.size() / 32) {
    quantize_q8_reference(x.data(), x.size(), qs.data(), d.data(), sum.data());
  }
};

struct Shape {
  int rows, cols, tokens;
};
// Rows that are not a multiple of any tile, columns with and without a 16-value tail,
// token counts around the tiles, and the GEMM size of a prefill chunk.
const Shape kFloatShapes[] = {{37, 64, 1}, {37, 172, 3}, {19, 200, 9}, {64, 256, 64}, {5, 16, 5}, {3, 8, 2}};
const Shape kQuantShapes[] = {{37, 64, 1}, {37, 256, 3}, {19, 96, 9}, {64, 256, 64}, {5, 32, 5}, {13, 64, 6}};

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
// moves by at most half a step d_b / 2 of its block.
double quant_tolerance(const std::vector<float>& w, const float* x) {
  double bound = 0;
  for (size_t b = 0; b < w.size() / 32; ++b) {
    double amax = 0, wsum = 0;
    for (size_t j = b * 32; j < b * 32 + 32; ++j) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[j])));
      wsum += std::fabs(static_cast<double>(w[j]));
    }
    bound += wsum * amax / 127.0 * 0.5 * 1.01;  // fp16 rounding of the scale
  }
  return bound + float_tolerance(w, x);
}

TEST(KernelSimd, QuantizedProductsMatchTheirBlockOrderOnEveryTarget) {
  for (const TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    for (const Shape& s : kQuantShapes) {
      const auto w = random_matrix(type, s.rows, s.cols, 8);
      const auto x = random_floats(static_cast<size_t>(s.tokens * s.cols), 9);
      const auto ref = run_matmul(kernels_for(*find_simd_target("scalar")), w.m, x, s.tokens);
      const Q8Reference xq(x);
      for (const auto& t : simd_targets()) {
        const auto out = run_matmul(kernels_for(t), w.m, x, s.tokens);
        for (int r = 0; r < s.rows; ++r) {
          const auto row = decode(w.m, r);
          for (int tok = 0; tok < s.tokens; ++tok) {
            const size_t xo = static_cast<size_t>(tok * s.cols);
            const float lanes =
                type == TensorType::Q8_0
                    ? dot_q8_0_q8_blocks(w.m.row(r), xq.qs.data() + xo, xq.d.data() + xo / 32, row.size())
                    : dot_q4_0_q8_blocks(w.m.row(r), xq.qs.data() + xo, xq.d.data() + xo / 32, row.size());
            const size_t at = static_cast<size_t>(tok * s.rows + r);
            const std::string where = std::string(t.name) + " " + std::string(traits(type).name) + " " +
                                      std::to_string(s.rows) + "x" + std::to_string(s.cols) + " r" + std::to_string(r) +
                                      " t" + std::to_string(tok);
            ASSERT_EQ(bits(out[at]), bits(lanes)) << where;
            ASSERT_NEAR(out[at], ref[at], quant_tolerance(row, x.data() + xo)) << where;
          }
        }
      }
    }
  }
}

// Q4_K / Q6_K (weights read as stored): bit for bit the order of dot_q4_k_q8_blocks /
// dot_q6_k_q8_blocks on every target, near the float product (matmul_reference) within
// the activation quantization error, and a token's outputs the same bits alone as in a
// batch (token tiles, the 64-token chunks) and with several threads.
TEST(KernelSimd, KQuantsMatchTheirBlockOrderOnEveryTarget) {
  const Shape shapes[] = {{21, 512, 3}, {37, 256, 1}, {19, 256, 9}, {64, 512, 64},
                          {5, 768, 5},  {13, 256, 6}, {3, 1024, 70}};
  for (const TensorType type : {TensorType::Q4_K, TensorType::Q6_K}) {
    for (const Shape& s : shapes) {
      const auto w = random_matrix(type, s.rows, s.cols, 10);
      const auto x = random_floats(static_cast<size_t>(s.tokens * s.cols), 11);
      const auto ref = run_matmul(kernels_for(*find_simd_target("scalar")), w.m, x, s.tokens);
      const Q8Reference xq(x);
      for (const auto& t : simd_targets()) {
        const KernelTable& k = kernels_for(t);
        const auto out = run_matmul(k, w.m, x, s.tokens);
        EXPECT_EQ(run_matmul(k, w.m, x, s.tokens, 3), out) << t.name << " threads";
        for (int r = 0; r < s.rows; ++r) {
          const auto row = decode(w.m, r);
          for (int tok = 0; tok < s.tokens; ++tok) {
            const size_t xo = static_cast<size_t>(tok * s.cols);
            const float lanes =
                type == TensorType::Q4_K
                    ? dot_q4_k_q8_blocks(w.m.row(r), xq.qs.data() + xo, xq.d.data() + xo / 32, xq.sum.data() + xo / 32,
                                         row.size())
                    : dot_q6_k_q8_blocks(w.m.row(r), xq.qs.data() + xo, xq.d.data() + xo / 32, row.size());
            const size_t at = static_cast<size_t>(tok * s.rows + r);
            const std::string where = std::string(t.name) + " " + std::string(traits(type).name) + " " +
                                      std::to_string(s.rows) + "x" + std::to_string(s.cols) + " r" + std::to_string(r) +
                                      " t" + std::to_string(tok);
            ASSERT_EQ(bits(out[at]), bits(lanes)) << where;
            ASSERT_NEAR(out[at], ref[at], quant_tolerance(row, x.data() + xo)) << where;
          }
        }
        for (int tok = 0; tok < s.tokens; tok += 7) {
          const std::vector<float> one(x.begin() + tok * s.cols, x.begin() + (tok + 1) * s.cols);
          const auto single = run_matmul(k, w.m, one, 1);
          for (int r = 0; r < s.rows; ++r) {
            ASSERT_EQ(bits(single[static_cast<size_t>(r)]), bits(out[static_cast<size_t>(tok * s.rows + r)]))
                << t.name << " " << traits(type).name << " token " << tok << " row " << r;
          }
        }
      }
    }
  }
}

// The packed layout holds every value of the file's layout (rows past the matrix zero), and
// a model's pre-packed matrix gives the same bits as the copy matmul packs per call.
TEST(KernelSimd, PackedLayoutKeepsEveryValueAndMatchesPackingPerCall) {
  for (const TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    const int rows = 37, cols = 96;
    const auto w = random_matrix(type, rows, cols, 14);
    const PackedQuantShape shape = packed_quant_shape(type, rows, cols);
    EXPECT_EQ(shape.groups, 5u);
    EXPECT_EQ(shape.group_bytes % 64, 0u);
    AlignedBuffer packed(shape.bytes());
    pack_quant_matrix(type, w.m.data, w.m.row_bytes, rows, cols, packed.data());
    for (int r = 0; r < rows; ++r) {
      const auto row = decode(w.m, r);
      for (int c = 0; c < cols; ++c) {
        const uint8_t* blk = w.m.row(r) + (c / 32) * traits(type).block_bytes;
        const float d = fp16_to_fp32(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
        const int v =
            packed_quant_value(type, packed.data(), rows, cols, static_cast<size_t>(r), static_cast<size_t>(c));
        ASSERT_EQ(static_cast<float>(v) * d, row[static_cast<size_t>(c)])
            << traits(type).name << " r" << r << " c" << c;
      }
    }
    // Rows 37..39 of the last group: values and scales zero (their outputs are never written).
    const uint8_t* last = packed.data() + 4 * shape.group_bytes;
    for (size_t b = 0; b < shape.blocks; ++b) {
      for (size_t i = 5; i < 8; ++i) {
        for (size_t c = 0; c < shape.qs_bytes / 32; ++c) {
          for (size_t k = 0; k < 4; ++k) ASSERT_EQ(last[shape.qs_at(b) + c * 32 + i * 4 + k], 0);
        }
        ASSERT_EQ(last[shape.scales_at(b) + i * 2], 0);
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

// A token's outputs are the same bits in a 64-token GEMM, one token at a time, and with
// any thread count; and the same on every target with fused multiply-add (float) or on
// every target (quantized).
TEST(KernelSimd, ResultsDoNotDependOnTokenCountThreadsOrTarget) {
  const int rows = 70, cols = 224, tokens = 11;
  const auto x = random_floats(static_cast<size_t>(tokens * cols), 12);
  for (const TensorType type :
       {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0}) {
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
      const bool quantized = type == TensorType::Q8_0 || type == TensorType::Q4_0;
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

}  // namespace
}  // namespace h2o
