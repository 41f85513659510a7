// The KV storage types and their attention kernels (kernels/kv_kernels.h):
//   - the encoders store what the spec says (shared/spec/kv-policies.md, "Storage types"),
//     checked against the naive reference's independent rounding and on hand-made ties;
//   - every SIMD kernel gives its scalar reference's bits on every target this CPU runs;
//   - a key rotated by its rank in the kernel has the bits RopeTable::rotate() gives it, so
//     `cache` positions under `full` compute exactly what absolute positions compute.
#include "kernels/kv_kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/tensor_type.h"
#include "kernels/dispatch.h"
#include "kernels/kv_reference.h"
#include "kernels/reference.h"
#include "kernels/rope.h"
#include "reference/naive_llama.h"

namespace h2o {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// Rows of n values in every stored type, encoded by the cache's encoders.
struct StoredRows {
  size_t n = 0;
  std::vector<float> f32;
  std::vector<uint16_t> f16;
  std::vector<int8_t> q8;
  std::vector<uint16_t> scale;
};

StoredRows stored_rows(size_t rows, size_t n, uint32_t seed) {
  StoredRows s;
  s.n = n;
  s.f32 = random_floats(rows * n, seed, 2.0f);
  s.f16.resize(rows * n);
  s.q8.resize(rows * n);
  s.scale.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    encode_kv_row_f16(&s.f32[r * n], n, &s.f16[r * n]);
    encode_kv_row_q8(&s.f32[r * n], n, &s.q8[r * n], &s.scale[r]);
  }
  return s;
}

TEST(KvStorage, EncodersMatchTheNaiveSpec) {
  const size_t n = 64;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    // Some rows of tiny, huge and mixed magnitudes too: scales near fp16's edges.
    const float scale = seed % 4 == 0 ? 1e-6f : seed % 4 == 1 ? 300.0f : 1.0f;
    const auto x = random_floats(n, seed, scale);
    std::vector<uint16_t> h(n);
    std::vector<int8_t> q(n);
    uint16_t d = 0;
    encode_kv_row_f16(x.data(), n, h.data());
    encode_kv_row_q8(x.data(), n, q.data(), &d);
    std::vector<float> back(n);
    std::vector<double> naive(x.begin(), x.end());
    ref::store_as_q8(naive.data(), static_cast<int>(n));
    decode_kv_row_q8(q.data(), d, n, back.data());
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(static_cast<double>(fp16_to_fp32(h[i])), ref::round_to_half(x[i])) << seed << " " << i;
      EXPECT_EQ(static_cast<double>(back[i]), naive[i]) << seed << " " << i;
    }
  }
}

TEST(KvStorage, Q8RoundsHalfToEvenClampsAndStoresZeroRows) {
  // max |x| = 127 * 0.5: d = 0.5 exactly, so x / d is exact and the ties are real.
  std::vector<float> x = {63.5f, 1.25f, 0.75f, -1.25f, -0.75f, 0.25f, -63.5f, 0.0f};
  std::vector<int8_t> q(x.size());
  uint16_t d = 0;
  encode_kv_row_q8(x.data(), x.size(), q.data(), &d);
  EXPECT_EQ(fp16_to_fp32(d), 0.5f);
  EXPECT_EQ(q, (std::vector<int8_t>{127, 2, 2, -2, -2, 0, -127, 0}));  // 2.5 -> 2, 1.5 -> 2, 0.5 -> 0
  // A scale that rounds down makes max / d pass 127: clamped.
  std::vector<float> y = {127.0f * 0.33333f, -1.0f};
  encode_kv_row_q8(y.data(), y.size(), q.data(), &d);
  EXPECT_LT(fp16_to_fp32(d) * 127.0f, y[0]);
  EXPECT_EQ(q[0], 127);
  std::vector<float> zeros(16, 0.0f);
  std::vector<int8_t> qz(16, 5);
  encode_kv_row_q8(zeros.data(), zeros.size(), qz.data(), &d);
  EXPECT_EQ(d, 0);
  EXPECT_EQ(qz, std::vector<int8_t>(16, 0));
  // Dequantisation is exact: an fp16 scale times |q| <= 127 fits a float's mantissa.
  const auto r = random_floats(64, 9, 3.0f);
  std::vector<int8_t> qr(64);
  encode_kv_row_q8(r.data(), 64, qr.data(), &d);
  std::vector<float> back(64);
  decode_kv_row_q8(qr.data(), d, 64, back.data());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(static_cast<double>(back[i]), static_cast<double>(fp16_to_fp32(d)) * qr[i]);
}

// The SIMD q8 encoders store what the reference stores, on rows of every length (tails),
// ties, clamping, zero rows, NaN and infinite values.
TEST(KvStorage, EveryTargetEncodesQ8AsTheReference) {
  std::vector<std::vector<float>> rows;
  for (size_t n : {1, 3, 8, 15, 16, 33, 64, 100, 128}) {
    for (float scale : {1e-6f, 1.0f, 300.0f, 1e5f})
      rows.push_back(random_floats(n, static_cast<uint32_t>(n) + 7, scale));
  }
  rows.push_back(
      {63.5f, 1.25f, 0.75f, -1.25f, -0.75f, 0.25f, -63.5f, 0.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, 3.5f, 4.5f, 5.5f});
  rows.push_back({127.0f * 0.33333f, -1.0f, 7.0f, 8.0f, 9.0f, 10.0f, 11.0f, 12.0f});
  rows.push_back(std::vector<float>(24, 0.0f));
  rows.push_back(std::vector<float>(24, -0.0f));
  std::vector<float> odd = random_floats(40, 3);
  odd[5] = std::nanf("");
  odd[17] = -std::nanf("");
  rows.push_back(odd);
  odd[30] = INFINITY;
  rows.push_back(odd);
  rows.push_back(std::vector<float>(16, std::nanf("")));
  std::vector<float> big = random_floats(32, 4, 1e9f);  // the scale overflows fp16: infinite
  rows.push_back(big);
  for (const auto& t : available_simd_targets()) {
    const KvKernelTable& k = kv_kernels_for(t);
    ASSERT_NE(k.encode_row_q8, nullptr) << t.name;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& x = rows[r];
      std::vector<int8_t> a(x.size(), 9), b(x.size(), 9);
      uint16_t da = 1, db = 2;
      k.encode_row_q8(x.data(), x.size(), a.data(), &da);
      encode_kv_row_q8(x.data(), x.size(), b.data(), &db);
      EXPECT_EQ(da, db) << t.name << " row " << r;
      EXPECT_EQ(a, b) << t.name << " row " << r;
    }
  }
}

// The per-rank rotation rows of a RoPE table, as RankRotations builds them.
std::vector<float> rope_rows(const RopeTable& rope, int ranks) {
  const size_t n_rot = static_cast<size_t>(rope.n_rot());
  std::vector<float> angles(n_rot), rows(static_cast<size_t>(ranks) * 2 * n_rot);
  for (int r = 0; r < ranks; ++r) {
    rope.angles(r * 37 + 3, angles.data());  // arbitrary positions per rank
    kv_rope_row(angles.data(), n_rot, rope.style() == RopeStyle::Neox, &rows[static_cast<size_t>(r) * 2 * n_rot]);
  }
  return rows;
}

TEST(KvKernels, EveryTargetMatchesTheScalarReferenceBitForBit) {
  constexpr size_t kRows = 40;  // stored rows; idx gathers some of them (one twice)
  const std::vector<uint32_t> idx = {3, 0, 39, 7, 7, 12, 25, 1, 38, 2, 19, 20, 5, 30, 31, 8, 9};
  const size_t m = idx.size();
  // Each stored row's rank (indexed by row, below m: the rotation table has m ranks), in no
  // particular order relative to the gather (the attention gathers in storage order).
  std::vector<uint32_t> rank(kRows);
  for (size_t i = 0; i < rank.size(); ++i) rank[i] = static_cast<uint32_t>((i * 5 + 3) % m);
  for (size_t n : {1, 2, 7, 8, 16, 30, 32, 63, 64, 65, 96, 128}) {
    const StoredRows rows = stored_rows(kRows, n, static_cast<uint32_t>(n));
    const auto q = random_floats(n, 100 + static_cast<uint32_t>(n)), p = random_floats(m, 200);
    // NORMAL and NEOX, full and partial rotary (n_rot < n: the rest passes unchanged).
    std::vector<RopeTable> ropes;
    for (RopeStyle style : {RopeStyle::Normal, RopeStyle::Neox}) {
      if (n % 2 == 0) ropes.emplace_back(style, static_cast<int>(n), static_cast<int>(n), 10000.0f);
      if (n >= 8) ropes.emplace_back(style, static_cast<int>(n), static_cast<int>(n / 2 / 2 * 2), 500.0f);
    }
    const KvKernelTable& ref = kv_kernels_for(SimdTarget{"scalar", 0});
    for (const auto& t : available_simd_targets()) {
      const KvKernelTable& k = kv_kernels_for(t);
      auto same = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i)
          EXPECT_EQ(bits(a[i]), bits(b[i])) << t.name << " " << what << " n=" << n << " i=" << i;
      };
      std::vector<float> a(m), b(m);
      k.dot_rows_f16(q.data(), rows.f16.data(), idx.data(), m, n, a.data());
      ref.dot_rows_f16(q.data(), rows.f16.data(), idx.data(), m, n, b.data());
      same(a, b, "dot f16");
      k.dot_rows_q8(q.data(), rows.q8.data(), rows.scale.data(), idx.data(), m, n, a.data());
      ref.dot_rows_q8(q.data(), rows.q8.data(), rows.scale.data(), idx.data(), m, n, b.data());
      same(a, b, "dot q8");
      std::vector<float> ya = random_floats(n, 7), yb = ya;
      k.axpy_rows_f16(p.data(), rows.f16.data(), idx.data(), m, n, ya.data());
      ref.axpy_rows_f16(p.data(), rows.f16.data(), idx.data(), m, n, yb.data());
      same(ya, yb, "axpy f16");
      k.axpy_rows_q8(p.data(), rows.q8.data(), rows.scale.data(), idx.data(), m, n, ya.data());
      ref.axpy_rows_q8(p.data(), rows.q8.data(), rows.scale.data(), idx.data(), m, n, yb.data());
      same(ya, yb, "axpy q8");
      for (const RopeTable& rope : ropes) {
        const auto table = rope_rows(rope, static_cast<int>(m));
        const KvRopeRows rr{table.data(), static_cast<size_t>(rope.n_rot()), rope.style() == RopeStyle::Neox};
        std::vector<float> sa(2 * n), sb(2 * n);
        k.dot_rows_rope_f32(q.data(), rows.f32.data(), idx.data(), rank.data(), m, n, rr, sa.data(), a.data());
        ref.dot_rows_rope_f32(q.data(), rows.f32.data(), idx.data(), rank.data(), m, n, rr, sb.data(), b.data());
        same(a, b, "rope f32");
        k.dot_rows_rope_f16(q.data(), rows.f16.data(), idx.data(), rank.data(), m, n, rr, sa.data(), a.data());
        ref.dot_rows_rope_f16(q.data(), rows.f16.data(), idx.data(), rank.data(), m, n, rr, sb.data(), b.data());
        same(a, b, "rope f16");
        k.dot_rows_rope_q8(q.data(), rows.q8.data(), rows.scale.data(), idx.data(), rank.data(), m, n, rr, sa.data(),
                           a.data());
        ref.dot_rows_rope_q8(q.data(), rows.q8.data(), rows.scale.data(), idx.data(), rank.data(), m, n, rr, sb.data(),
                             b.data());
        same(a, b, "rope q8");
      }
    }
  }
}

// The multi-query kernels give each query the bits the one-query scalar reference gives it
// alone: every query count, row counts of every remainder mod 4 (the AVX-512 path's blocks
// of four rows, a pair and a single row left), every head size of the test above and one
// past the paired path's limit, queries and outputs at strides wider than a row.
TEST(KvKernels, MultiQueryKernelsGiveEachQueryItsOneQueryBits) {
  constexpr size_t kRows = 40;
  const std::vector<uint32_t> all = {3, 0, 39, 7, 7, 12, 25, 1, 38, 2, 19, 20, 5, 30, 31, 8, 9};
  const KvKernelTable& ref = kv_kernels_for(SimdTarget{"scalar", 0});
  for (size_t n : {1, 2, 7, 8, 16, 30, 32, 63, 64, 65, 96, 128, 264}) {
    const StoredRows rows = stored_rows(kRows, n, static_cast<uint32_t>(n) + 50);
    const size_t q_stride = n + 3;
    const auto q = random_floats(kKvMaxQueries * q_stride, 300 + static_cast<uint32_t>(n));
    for (size_t m : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{6}, size_t{7}, all.size()}) {
      const std::vector<uint32_t> idx(all.begin(), all.begin() + static_cast<ptrdiff_t>(m));
      const size_t out_stride = m + 5;
      std::vector<std::vector<float>> p;
      for (size_t t = 0; t < kKvMaxQueries; ++t) p.push_back(random_floats(m, 400 + static_cast<uint32_t>(t)));
      for (size_t nq = 1; nq <= kKvMaxQueries; ++nq) {
        for (const auto& target : available_simd_targets()) {
          const KvKernelTable& k = kv_kernels_for(target);
          const std::string at = std::string(target.name) + " n=" + std::to_string(n) + " m=" + std::to_string(m) +
                                 " nq=" + std::to_string(nq);
          for (bool q8 : {false, true}) {
            std::vector<float> got(kKvMaxQueries * out_stride, -1.0f), want(m);
            if (q8) {
              k.dot_queries_q8(q.data(), q_stride, nq, rows.q8.data(), rows.scale.data(), idx.data(), m, n, got.data(),
                               out_stride);
            } else {
              k.dot_queries_f16(q.data(), q_stride, nq, rows.f16.data(), idx.data(), m, n, got.data(), out_stride);
            }
            std::vector<std::vector<float>> ya, yb;
            std::vector<float*> ya_ptr;
            std::vector<const float*> p_ptr;
            for (size_t t = 0; t < nq; ++t) {
              ya.push_back(random_floats(n, 500 + static_cast<uint32_t>(t)));
              yb.push_back(ya.back());
              p_ptr.push_back(p[t].data());
            }
            for (auto& y : ya) ya_ptr.push_back(y.data());
            if (q8) {
              k.axpy_queries_q8(p_ptr.data(), nq, rows.q8.data(), rows.scale.data(), idx.data(), m, n, ya_ptr.data());
            } else {
              k.axpy_queries_f16(p_ptr.data(), nq, rows.f16.data(), idx.data(), m, n, ya_ptr.data());
            }
            for (size_t t = 0; t < nq; ++t) {
              if (q8) {
                ref.dot_rows_q8(q.data() + t * q_stride, rows.q8.data(), rows.scale.data(), idx.data(), m, n,
                                want.data());
                ref.axpy_rows_q8(p[t].data(), rows.q8.data(), rows.scale.data(), idx.data(), m, n, yb[t].data());
              } else {
                ref.dot_rows_f16(q.data() + t * q_stride, rows.f16.data(), idx.data(), m, n, want.data());
                ref.axpy_rows_f16(p[t].data(), rows.f16.data(), idx.data(), m, n, yb[t].data());
              }
              for (size_t j = 0; j < m; ++j)
                ASSERT_EQ(bits(got[t * out_stride + j]), bits(want[j]))
                    << at << (q8 ? " q8" : " f16") << " dot t=" << t << " j=" << j;
              for (size_t i = 0; i < n; ++i)
                ASSERT_EQ(bits(ya[t][i]), bits(yb[t][i]))
                    << at << (q8 ? " q8" : " f16") << " axpy t=" << t << " i=" << i;
            }
            // Nothing past the m outputs of each query, nor in the queries beyond nq.
            for (size_t t = 0; t < kKvMaxQueries; ++t) {
              for (size_t j = t < nq ? m : 0; j < out_stride; ++j) ASSERT_EQ(got[t * out_stride + j], -1.0f) << at;
            }
          }
        }
      }
    }
  }
}

// Many queries at once (a prompt chunk's rows; from eight on the dots go through a tile
// of rows in lanes): each query still gets the one-query scalar reference's bits, for
// query counts around the tile's threshold and its two-query steps, row counts around a
// block of 4, 8 and 16 rows, head sizes with and without a tail after the last eight,
// odd ones (no 32-bit words: the four-query path) and one past the tile's limit; nothing
// is written past each query's m outputs.
TEST(KvKernels, ManyQueryDotsGiveEachQueryItsOneQueryBits) {
  constexpr size_t kRows = 48;
  std::vector<uint32_t> all;
  for (uint32_t j = 0; j < 40; ++j) all.push_back((j * 29 + 7) % kRows);
  all[5] = all[6];  // a row twice
  const KvKernelTable& ref = kv_kernels_for(SimdTarget{"scalar", 0});
  for (size_t n : {1, 2, 4, 6, 8, 12, 30, 64, 66, 128, 256, 260}) {
    const StoredRows rows = stored_rows(kRows, n, static_cast<uint32_t>(n) + 70);
    const size_t q_stride = n + 1, max_q = 35;
    const auto q = random_floats(max_q * q_stride, 600 + static_cast<uint32_t>(n));
    for (size_t m : {size_t{1}, size_t{7}, size_t{8}, size_t{16}, size_t{17}, size_t{33}, all.size()}) {
      const std::vector<uint32_t> idx(all.begin(), all.begin() + static_cast<ptrdiff_t>(m));
      const size_t out_stride = m + 3;
      std::vector<float> want(m);
      for (size_t nq : {5, 7, 8, 9, 16, 17, 35}) {
        for (const auto& target : available_simd_targets()) {
          const KvKernelTable& k = kv_kernels_for(target);
          for (bool q8 : {false, true}) {
            const std::string at = std::string(target.name) + " n=" + std::to_string(n) + " m=" + std::to_string(m) +
                                   " nq=" + std::to_string(nq) + (q8 ? " q8" : " f16");
            std::vector<float> got(max_q * out_stride, -1.0f);
            if (q8) {
              k.dot_queries_q8(q.data(), q_stride, nq, rows.q8.data(), rows.scale.data(), idx.data(), m, n, got.data(),
                               out_stride);
            } else {
              k.dot_queries_f16(q.data(), q_stride, nq, rows.f16.data(), idx.data(), m, n, got.data(), out_stride);
            }
            for (size_t t = 0; t < nq; ++t) {
              if (q8) {
                ref.dot_rows_q8(q.data() + t * q_stride, rows.q8.data(), rows.scale.data(), idx.data(), m, n,
                                want.data());
              } else {
                ref.dot_rows_f16(q.data() + t * q_stride, rows.f16.data(), idx.data(), m, n, want.data());
              }
              for (size_t j = 0; j < m; ++j)
                ASSERT_EQ(bits(got[t * out_stride + j]), bits(want[j])) << at << " t=" << t << " j=" << j;
            }
            for (size_t t = 0; t < max_q; ++t) {
              for (size_t j = t < nq ? m : 0; j < out_stride; ++j) ASSERT_EQ(got[t * out_stride + j], -1.0f) << at;
            }
          }
        }
      }
    }
  }
}

// The f16 / q8 kernels are the f32 kernels on the exactly dequantised rows.
TEST(KvKernels, TypedKernelsAreTheFloatKernelsOnDequantisedRows) {
  const size_t n = 64;
  const StoredRows rows = stored_rows(12, n, 5);
  const std::vector<uint32_t> idx = {11, 0, 4, 4, 9};
  const auto q = random_floats(n, 6);
  const auto p = random_floats(idx.size(), 8);
  std::vector<float> f16_rows(rows.f16.size()), q8_rows(rows.q8.size());
  for (size_t r = 0; r < 12; ++r) {
    decode_kv_row_f16(&rows.f16[r * n], n, &f16_rows[r * n]);
    decode_kv_row_q8(&rows.q8[r * n], rows.scale[r], n, &q8_rows[r * n]);
  }
  for (const auto& t : available_simd_targets()) {
    const KvKernelTable& k = kv_kernels_for(t);
    std::vector<float> got(idx.size()), want(idx.size());
    k.dot_rows_q8(q.data(), rows.q8.data(), rows.scale.data(), idx.data(), idx.size(), n, got.data());
    dot_rows_f32_reference(q.data(), q8_rows.data(), idx.data(), idx.size(), n, want.data());
    for (size_t j = 0; j < idx.size(); ++j) EXPECT_EQ(bits(got[j]), bits(want[j])) << t.name;
    k.dot_rows_f16(q.data(), rows.f16.data(), idx.data(), idx.size(), n, got.data());
    dot_rows_f32_reference(q.data(), f16_rows.data(), idx.data(), idx.size(), n, want.data());
    for (size_t j = 0; j < idx.size(); ++j) EXPECT_EQ(bits(got[j]), bits(want[j])) << t.name;
    std::vector<float> ya(n, 0.5f), yb(n, 0.5f);
    k.axpy_rows_q8(p.data(), rows.q8.data(), rows.scale.data(), idx.data(), idx.size(), n, ya.data());
    axpy_rows_f32_reference(p.data(), q8_rows.data(), idx.data(), idx.size(), n, yb.data());
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(bits(ya[i]), bits(yb[i])) << t.name;
  }
}

// A key rotated by rank r in the kernel equals RopeTable::rotate() at position r, then
// dot_f32: `cache` positions reproduce absolute positions bit for bit where ranks equal
// positions (under `full`).
TEST(KvKernels, RankRotationIsRopeTableRotateBitForBit) {
  for (RopeStyle style : {RopeStyle::Normal, RopeStyle::Neox}) {
    for (int n_rot : {64, 32}) {
      const RopeTable rope(style, 64, n_rot, 10000.0f);
      const size_t n = 64, ranks = 300;
      const auto keys = random_floats(ranks * n, 11);
      const auto q = random_floats(n, 12);
      std::vector<float> table(ranks * 2 * static_cast<size_t>(n_rot)), angles(static_cast<size_t>(n_rot));
      std::vector<uint32_t> idx(ranks);
      for (size_t r = 0; r < ranks; ++r) {
        rope.angles(static_cast<int>(r), angles.data());
        kv_rope_row(angles.data(), static_cast<size_t>(n_rot), style == RopeStyle::Neox, &table[r * 2 * n_rot]);
        idx[r] = static_cast<uint32_t>(r);
      }
      const KvRopeRows rr{table.data(), static_cast<size_t>(n_rot), style == RopeStyle::Neox};
      for (const auto& t : available_simd_targets()) {
        std::vector<float> got(ranks), scratch(2 * n);
        kv_kernels_for(t).dot_rows_rope_f32(q.data(), keys.data(), idx.data(), idx.data(), ranks, n, rr, scratch.data(),
                                            got.data());
        for (size_t r = 0; r < ranks; ++r) {
          std::vector<float> k(keys.begin() + static_cast<std::ptrdiff_t>(r * n),
                               keys.begin() + static_cast<std::ptrdiff_t>((r + 1) * n));
          rope.rotate(k.data(), 1, static_cast<int>(r));
          EXPECT_EQ(bits(got[r]), bits(dot_f32_reference(q.data(), k.data(), n))) << t.name << " rank " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace h2o
