// The KV kernels of kv_kernels.h for every compiled Highway target, bit-identical to their
// scalar references (kv_reference.cpp): rows are widened exactly in registers (f16 by
// promotion, q8 as float(q) * d), then summed as dot_f32 / axpy_f32 do.
//
// Dots use eight float lanes (kV vectors of N lanes, N = 1, 4 or 8) in dot_f32's order,
// four rows at a time (independent sums: their latencies overlap); a prompt chunk's
// several queries on AVX-512 hold two rows' eight lanes in one sixteen-lane vector; value
// rows use the widest vectors, the output held in registers while every row is added to
// it. Under `cache` positions a key row is rotated by its rank in registers on its way
// into the dot (or, for shapes where a vector would straddle a rotation boundary, widened
// into a row-sized scratch, rotated into a second one and dotted from there).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kv.cpp"
// clang-format off
#include "common/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on
#include <hwy/cache_control.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "format/tensor_type.h"
#include "kernels/kv_kernels.h"
#include "kernels/simd_sum-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

using D8 = hn::CappedTag<float, 8>;  // dot_f32's eight lanes
using DW = hn::ScalableTag<float>;   // value rows, rotations

// Row readers: Load(d, i) gives the values i .. i + Lanes(d) widened to float exactly,
// At(i) one value.
struct F32Row {
  const float* p;
  template <class D>
  HWY_INLINE hn::Vec<D> Load(D d, size_t i) const {
    return hn::LoadU(d, p + i);
  }
  HWY_INLINE float At(size_t i) const { return p[i]; }
};
struct F16Row {
  const uint16_t* p;
  template <class D>
  HWY_INLINE hn::Vec<D> Load(D d, size_t i) const {
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::float16_t, D>(), reinterpret_cast<const hwy::float16_t*>(p + i)));
  }
  HWY_INLINE float At(size_t i) const { return fp16_to_fp32(p[i]); }
};
// A q8 row's fp16 scale widened inline (the out-of-line fp16_to_fp32 per row was ~3% of a
// batched decode step); the same promotion as F16Row's, so the same bits.
HWY_INLINE float ScaleAt(const uint16_t* scale, size_t i) {
  const hn::CappedTag<float, 1> d1;
  return hn::GetLane(hn::PromoteTo(
      d1, hn::LoadU(hn::Rebind<hwy::float16_t, decltype(d1)>(), reinterpret_cast<const hwy::float16_t*>(scale + i))));
}

struct Q8Row {
  const int8_t* p;
  float d;  // the row's scale, widened
  template <class D>
  HWY_INLINE hn::Vec<D> Load(D df, size_t i) const {
    const hn::Rebind<int32_t, D> di;
    const hn::Rebind<int8_t, D> d8;
    return hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, p + i))), hn::Set(df, d));
  }
  HWY_INLINE float At(size_t i) const { return static_cast<float>(p[i]) * d; }
};

// dot_f32_reference's order for each of R rows at once: eight lanes of multiply-then-add,
// combined as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)), then the tail in order. The rows' sums
// are independent chains, so R rows overlap their add latencies (one row alone waits on
// its single accumulator); each row gets the bits it gets alone. Rotate(r, at, v) maps row
// r's widened values at `at` to what is dotted (the identity, or the rank's rotation).
template <size_t R, class Row, class Rotate>
HWY_INLINE void DotRowsR(const float* q, const Row* rows, size_t n, const Rotate& rotate, float* out) {
  const D8 d;
  constexpr size_t N = hn::MaxLanes(d), kV = 8 / N;
  hn::Vec<D8> acc[R][kV];
  for (auto& r : acc) {
    for (auto& v : r) v = hn::Zero(d);
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t v = 0; v < kV; ++v) {
      const size_t at = i + v * N;
      const auto qv = hn::LoadU(d, q + at);
      for (size_t r = 0; r < R; ++r) acc[r][v] = hn::Add(acc[r][v], hn::Mul(qv, rotate(r, at, rows[r].Load(d, at))));
    }
  }
  if constexpr (R == 4) {
    SumEightLanesX4<kV>(d, {acc[0], acc[1], acc[2], acc[3]}, out);
  } else {
    for (size_t r = 0; r < R; ++r) out[r] = SumEightLanes(d, acc[r]);
  }
  if (i < n) {
    for (size_t r = 0; r < R; ++r) {
      for (size_t k = i; k < n; ++k) out[r] += q[k] * rows[r].At(k);  // only unrotated rows have a tail
    }
  }
}

struct NoRotation {
  template <class V>
  HWY_INLINE V operator()(size_t, size_t, V v) const {
    return v;
  }
};

// Key rows this far ahead of the ones being dotted are fetched into the cache: a batch's
// caches are far larger than the CPU's, so a head's keys come from memory, and the visible
// slots skip the evicted ones, which the hardware prefetcher follows poorly
// (kv_scores/{f16,q8}/*/in_order from memory: 1.7-2.6x faster with it). Value rows, read in
// the same order, gained nothing from it (kv_values) and do without.
constexpr size_t kRowsAhead = 16;

template <class Row>
HWY_INLINE void PrefetchRow(const Row& row, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(row.p);
  for (size_t b = 0; b < n * sizeof(*row.p); b += 64) hwy::Prefetch(p + b);
}

// Rows idx[0..m) four at a time, then one at a time.
template <class MakeRow>
HWY_INLINE void DotRows(const float* q, const MakeRow& make_row, const uint32_t* idx, size_t m, size_t n, float* out) {
  using Row = decltype(make_row(uint32_t{0}));
  size_t j = 0;
  for (size_t a = 0; a < std::min(m, kRowsAhead); ++a) PrefetchRow(make_row(idx[a]), n);
  for (; j + 4 <= m; j += 4) {
    for (size_t a = j + kRowsAhead; a < std::min(m, j + kRowsAhead + 4); ++a) PrefetchRow(make_row(idx[a]), n);
    const Row rows[4] = {make_row(idx[j]), make_row(idx[j + 1]), make_row(idx[j + 2]), make_row(idx[j + 3])};
    DotRowsR<4>(q, rows, n, NoRotation{}, out + j);
  }
  for (; j < m; ++j) {
    const Row row = make_row(idx[j]);
    DotRowsR<1>(q, &row, n, NoRotation{}, out + j);
  }
}

// DotRowsR for Q query rows (query r at q + r * q_stride) against R rows: out[r *
// out_stride + k] = query r . row k in dot_f32's order, each the bits DotRowsR gives that
// pair. A prefill chunk's rows all read the same keys: each key value is widened once
// here for Q queries, where DotRowsR widens it once per query (q8: load, promote,
// convert, scale: four of its seven operations per eight values).
template <size_t Q, size_t R, class Row>
HWY_INLINE void DotQueriesRowsR(const float* q, size_t q_stride, const Row* rows, size_t n, float* out,
                                size_t out_stride) {
  const D8 d;
  constexpr size_t N = hn::MaxLanes(d), kV = 8 / N;
  hn::Vec<D8> acc[Q][R][kV];
  for (auto& a : acc) {
    for (auto& r : a) {
      for (auto& v : r) v = hn::Zero(d);
    }
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t v = 0; v < kV; ++v) {
      const size_t at = i + v * N;
      hn::Vec<D8> k[R];
      for (size_t r = 0; r < R; ++r) k[r] = rows[r].Load(d, at);
      for (size_t t = 0; t < Q; ++t) {
        const auto qv = hn::LoadU(d, q + t * q_stride + at);
        for (size_t r = 0; r < R; ++r) acc[t][r][v] = hn::Add(acc[t][r][v], hn::Mul(qv, k[r]));
      }
    }
  }
  // The Q x R sums, four at a time where they make up fours.
  float sum[Q * R];
  size_t s = 0;
  for (; s + 4 <= Q * R; s += 4)
    SumEightLanesX4<kV>(d,
                        {acc[s / R][s % R], acc[(s + 1) / R][(s + 1) % R], acc[(s + 2) / R][(s + 2) % R],
                         acc[(s + 3) / R][(s + 3) % R]},
                        sum + s);
  for (; s < Q * R; ++s) sum[s] = SumEightLanes(d, acc[s / R][s % R]);
  for (size_t t = 0; t < Q; ++t) {
    for (size_t r = 0; r < R; ++r) {
      float x = sum[t * R + r];
      for (size_t k = i; k < n; ++k) x += q[t * q_stride + k] * rows[r].At(k);
      out[t * out_stride + r] = x;
    }
  }
}

#if HWY_MAX_BYTES >= 64  // sixteen float lanes (AVX-512)
// Sixteen-lane targets: two rows' values i .. i + 7 in one vector (row a in the lower
// eight lanes, row b in the upper), widened exactly as each row's Load widens them: q8 as
// float(q) * d with the rows' scales side by side in `scales`.
template <class DF>
HWY_INLINE hn::Vec<DF> LoadRowPair(DF df, const Q8Row& a, const Q8Row& b, size_t i, hn::Vec<DF> scales) {
  const hn::Full128<int8_t> d16;
  const hn::Half<decltype(d16)> d8;
  const auto both = hn::Combine(d16, hn::LoadU(d8, b.p + i), hn::LoadU(d8, a.p + i));
  return hn::Mul(hn::ConvertTo(df, hn::PromoteTo(hn::Rebind<int32_t, DF>(), both)), scales);
}
template <class DF>
HWY_INLINE hn::Vec<DF> LoadRowPair(DF df, const F16Row& a, const F16Row& b, size_t i, hn::Vec<DF> /*scales*/) {
  const hn::Rebind<hwy::float16_t, DF> d16;
  const hn::Half<decltype(d16)> d8;
  const auto* pa = reinterpret_cast<const hwy::float16_t*>(a.p + i);
  const auto* pb = reinterpret_cast<const hwy::float16_t*>(b.p + i);
  return hn::PromoteTo(df, hn::Combine(d16, hn::LoadU(d8, pb), hn::LoadU(d8, pa)));
}
template <class DF>
HWY_INLINE hn::Vec<DF> RowPairScales(DF df, const Q8Row& a, const Q8Row& b) {
  const hn::Half<DF> dh;
  return hn::Combine(df, hn::Set(dh, b.d), hn::Set(dh, a.d));
}
template <class DF>
HWY_INLINE hn::Vec<DF> RowPairScales(DF df, const F16Row&, const F16Row&) {
  return hn::Zero(df);
}

// DotQueriesRowsR<Q, 2> on sixteen-lane targets: each query's eight lanes for both rows in
// one vector (the query's values duplicated into both halves, xd), so a pair of rows costs
// one widening and Q multiply-adds of sixteen lanes instead of two and 2Q of eight; the
// halves end as SumEightLanes ends a row. The same bits as DotQueriesRowsR.
constexpr size_t kPairMaxN = 256;  // head sizes up to this take the paired path
template <size_t Q, size_t P, class Row>
HWY_INLINE void DotQueriesRowPairs(const float* xd, const float* q, size_t q_stride, const Row* rows, size_t n,
                                   float* out, size_t out_stride) {
  const DW df;
  const D8 d8;
  hn::Vec<DW> scales[P], acc[Q][P];
  for (size_t r = 0; r < P; ++r) scales[r] = RowPairScales(df, rows[2 * r], rows[2 * r + 1]);
  for (auto& a : acc) {
    for (auto& v : a) v = hn::Zero(df);
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    hn::Vec<DW> k[P];
    for (size_t r = 0; r < P; ++r) k[r] = LoadRowPair(df, rows[2 * r], rows[2 * r + 1], i, scales[r]);
    for (size_t t = 0; t < Q; ++t) {
      const auto x = hn::Load(df, xd + t * 2 * kPairMaxN + 2 * i);
      for (size_t r = 0; r < P; ++r) acc[t][r] = hn::Add(acc[t][r], hn::Mul(x, k[r]));
    }
  }
  // Query t's sums for rows 2r, 2r + 1: the halves of acc[t][r].
  constexpr size_t kSums = 2 * Q * P;
  hn::Vec<D8> half[kSums][1];
  for (size_t t = 0; t < Q; ++t) {
    for (size_t r = 0; r < P; ++r) {
      half[(t * P + r) * 2][0] = hn::LowerHalf(d8, acc[t][r]);
      half[(t * P + r) * 2 + 1][0] = hn::UpperHalf(d8, acc[t][r]);
    }
  }
  float sum[kSums];
  size_t s = 0;
  for (; s + 4 <= kSums; s += 4) SumEightLanesX4<1>(d8, {half[s], half[s + 1], half[s + 2], half[s + 3]}, sum + s);
  for (; s < kSums; ++s) sum[s] = SumEightLanes(d8, half[s]);
  for (size_t t = 0; t < Q; ++t) {
    for (size_t r = 0; r < 2 * P; ++r) {
      float x = sum[t * 2 * P + r];
      for (size_t k = i; k < n; ++k) x += q[t * q_stride + k] * rows[r].At(k);
      out[t * out_stride + r] = x;
    }
  }
}
#endif

// Q queries (Q <= kKvMaxQueries) against rows idx[0..m): two rows at a time (Q x 2
// independent sums), then one.
template <size_t Q, class MakeRow>
HWY_INLINE void DotQueriesRows(const float* q, size_t q_stride, const MakeRow& make_row, const uint32_t* idx, size_t m,
                               size_t n, float* out, size_t out_stride) {
  using Row = decltype(make_row(uint32_t{0}));
  size_t j = 0;
#if HWY_MAX_BYTES >= 64
  if constexpr (hn::MaxLanes(DW()) == 16 && !std::is_same_v<Row, F32Row>) {
    if (n <= kPairMaxN) {
      // Each query's values, every group of eight twice in a row.
      HWY_ALIGN float xd[Q * 2 * kPairMaxN];
      for (size_t t = 0; t < Q; ++t) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
          std::memcpy(xd + t * 2 * kPairMaxN + 2 * i, q + t * q_stride + i, 8 * sizeof(float));
          std::memcpy(xd + t * 2 * kPairMaxN + 2 * i + 8, q + t * q_stride + i, 8 * sizeof(float));
        }
      }
      for (; j + 4 <= m; j += 4) {
        const Row rows[4] = {make_row(idx[j]), make_row(idx[j + 1]), make_row(idx[j + 2]), make_row(idx[j + 3])};
        DotQueriesRowPairs<Q, 2>(xd, q, q_stride, rows, n, out + j, out_stride);
      }
      for (; j + 2 <= m; j += 2) {
        const Row rows[2] = {make_row(idx[j]), make_row(idx[j + 1])};
        DotQueriesRowPairs<Q, 1>(xd, q, q_stride, rows, n, out + j, out_stride);
      }
      if (j < m) {
        const Row row = make_row(idx[j]);
        DotQueriesRowsR<Q, 1>(q, q_stride, &row, n, out + j, out_stride);
      }
      return;
    }
  }
#endif
  for (size_t a = 0; a < std::min(m, kRowsAhead); ++a) PrefetchRow(make_row(idx[a]), n);
  for (; j + 2 <= m; j += 2) {
    for (size_t a = j + kRowsAhead; a < std::min(m, j + kRowsAhead + 2); ++a) PrefetchRow(make_row(idx[a]), n);
    const Row rows[2] = {make_row(idx[j]), make_row(idx[j + 1])};
    DotQueriesRowsR<Q, 2>(q, q_stride, rows, n, out + j, out_stride);
  }
  if (j < m) {
    const Row row = make_row(idx[j]);
    DotQueriesRowsR<Q, 1>(q, q_stride, &row, n, out + j, out_stride);
  }
}

// nq (1..kKvMaxQueries) queries: the instantiation for their count.
template <class MakeRow>
HWY_INLINE void DotQueriesRowsUpTo4(const float* q, size_t q_stride, size_t nq, const MakeRow& make_row,
                                    const uint32_t* idx, size_t m, size_t n, float* out, size_t out_stride) {
  switch (nq) {
    case 1:
      return DotRows(q, make_row, idx, m, n, out);
    case 2:
      return DotQueriesRows<2>(q, q_stride, make_row, idx, m, n, out, out_stride);
    case 3:
      return DotQueriesRows<3>(q, q_stride, make_row, idx, m, n, out, out_stride);
    default:
      return DotQueriesRows<4>(q, q_stride, make_row, idx, m, n, out, out_stride);
  }
}

// ------------------------------------------------------------ many queries, rows in lanes
// A prompt chunk's rows (up to the chunk size) all dot the same keys. From kTileMinQueries
// queries on, a block of N rows (N float lanes) is widened once into a transposed tile
// tile[i * N + lane] = value i of row `lane`, gathering four q8 codes (two f16 values) of
// every row per 32-bit lane; then each query's N dots cost n multiplies and n adds of N
// lanes and no horizontal sum: dot_f32's lane l (values i = l mod 8) is accumulator l,
// the accumulators combined as SumEightLanes combines lanes and the tail after the last
// eight added in order, so every (query, row) gets dot_f32's bits. Rows four at a time
// with the queries in registers (DotQueriesRows) widen each row once per four queries
// and end in a horizontal sum per dot: the tile's dots are ~1.4x faster on AVX-512
// (kv_chunk_scores/q8/{4q,32q} in bench/kernels_bench.cpp: 98.7 -> 71.5 us), about even
// on AVX2, whose eight lanes leave less to save.
constexpr size_t kTileMinQueries = 8;
constexpr size_t kTileMaxN = 256;  // head sizes up to this take the tiled path

#if HWY_MAX_BYTES >= 32
// Lanes of `base` (element index of each row's first 32-bit word) for rows idx[j0 ..
// j0 + valid); lanes past `valid` repeat the last row (their dots are not stored).
template <class DI>
HWY_INLINE hn::Vec<DI> TileBases(DI di, const uint32_t* idx, size_t valid, size_t words_per_row) {
  HWY_ALIGN int32_t base[hn::MaxLanes(di)];
  for (size_t l = 0; l < hn::Lanes(di); ++l)
    base[l] = static_cast<int32_t>(idx[std::min(l, valid - 1)] * words_per_row);
  return hn::Load(di, base);
}

// q8 rows into the tile: float(q) * d, as Q8Row::Load widens them.
HWY_INLINE void FillTile(const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t valid, size_t n,
                         float* HWY_RESTRICT tile) {
  const DW df;
  const hn::RebindToSigned<DW> di;
  const size_t N = hn::Lanes(df);
  HWY_ALIGN float sc[hn::MaxLanes(df)];
  for (size_t l = 0; l < N; ++l) sc[l] = ScaleAt(scale, idx[std::min(l, valid - 1)]);
  const auto d = hn::Load(df, sc);
  const auto base = TileBases(di, idx, valid, n / 4);
  const auto* words = reinterpret_cast<const int32_t*>(rows);
  const auto code = [&](auto v) { return hn::Mul(hn::ConvertTo(df, v), d); };
  for (size_t w = 0; w < n / 4; ++w) {
    const auto v = hn::GatherIndex(di, words, hn::Add(base, hn::Set(di, static_cast<int32_t>(w))));
    float* t = tile + 4 * w * N;
    hn::Store(code(hn::ShiftRight<24>(hn::ShiftLeft<24>(v))), df, t);  // byte 0: value 4w
    hn::Store(code(hn::ShiftRight<24>(hn::ShiftLeft<16>(v))), df, t + N);
    hn::Store(code(hn::ShiftRight<24>(hn::ShiftLeft<8>(v))), df, t + 2 * N);
    hn::Store(code(hn::ShiftRight<24>(v)), df, t + 3 * N);
  }
}

// f16 rows into the tile: promoted, as F16Row::Load widens them.
HWY_INLINE void FillTile(const uint16_t* rows, const uint16_t* /*scale*/, const uint32_t* idx, size_t valid, size_t n,
                         float* HWY_RESTRICT tile) {
  const DW df;
  const hn::RebindToSigned<DW> di;
  const hn::RebindToUnsigned<DW> du;
  const hn::Rebind<uint16_t, DW> du16;
  const hn::Rebind<hwy::float16_t, DW> df16;
  const size_t N = hn::Lanes(df);
  const auto base = TileBases(di, idx, valid, n / 2);
  const auto* words = reinterpret_cast<const int32_t*>(rows);
  const auto half = [&](auto u) { return hn::PromoteTo(df, hn::BitCast(df16, hn::TruncateTo(du16, u))); };
  for (size_t w = 0; w < n / 2; ++w) {
    const auto v = hn::BitCast(du, hn::GatherIndex(di, words, hn::Add(base, hn::Set(di, static_cast<int32_t>(w)))));
    hn::Store(half(v), df, tile + 2 * w * N);  // the lower half: value 2w
    hn::Store(half(hn::ShiftRight<16>(v)), df, tile + (2 * w + 1) * N);
  }
}

// One query against the tile's N rows: out[lane] for lane < valid. (Two or three queries
// sharing each tile load were no faster: kv_chunk_scores/q8/32q.)
HWY_INLINE void DotTileQuery(const float* HWY_RESTRICT tile, const float* q, size_t n, float* out, size_t valid) {
  const DW df;
  const size_t N = hn::Lanes(df);
  using V = hn::Vec<DW>;
  V acc[8];
  for (auto& v : acc) v = hn::Zero(df);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t l = 0; l < 8; ++l)
      acc[l] = hn::Add(acc[l], hn::Mul(hn::Set(df, q[i + l]), hn::Load(df, tile + (i + l) * N)));
  }
  V s = hn::Add(hn::Add(hn::Add(acc[0], acc[4]), hn::Add(acc[1], acc[5])),
                hn::Add(hn::Add(acc[2], acc[6]), hn::Add(acc[3], acc[7])));
  for (; i < n; ++i) s = hn::Add(s, hn::Mul(hn::Set(df, q[i]), hn::Load(df, tile + i * N)));
  if (valid == N) {
    hn::StoreU(s, df, out);
  } else {
    HWY_ALIGN float part[hn::MaxLanes(df)];
    hn::Store(s, df, part);
    std::memcpy(out, part, valid * sizeof(float));
  }
}

// Whether the tiled path takes these rows: 32-bit words inside every row and word indices
// within int32.
template <class T>
HWY_INLINE bool TileFits(const T* rows, const uint32_t* idx, size_t m, size_t n) {
  constexpr size_t kPerWord = 4 / sizeof(T);
  if (n % kPerWord != 0 || n > kTileMaxN || reinterpret_cast<uintptr_t>(rows) % 4 != 0) return false;
  const uint32_t top = *std::max_element(idx, idx + m);
  return (static_cast<uint64_t>(top) + 1) * (n / kPerWord) <=
         static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
}
#endif

// nq >= 1 queries: the tiled path for many (see above), else groups of up to four.
template <class T, class MakeRow>
HWY_INLINE void DotQueriesRowsAny(const float* q, size_t q_stride, size_t nq, const T* rows, const uint16_t* scale,
                                  const MakeRow& make_row, const uint32_t* idx, size_t m, size_t n, float* out,
                                  size_t out_stride) {
#if HWY_MAX_BYTES >= 32
  if (nq >= kTileMinQueries && m > 0 && TileFits(rows, idx, m, n)) {
    const DW df;
    const size_t N = hn::Lanes(df);
    HWY_ALIGN float tile[kTileMaxN * hn::MaxLanes(df)];
    for (size_t j = 0; j < m; j += N) {
      const size_t valid = std::min(N, m - j);
      FillTile(rows, scale, idx + j, valid, n, tile);
      for (size_t t = 0; t < nq; ++t) DotTileQuery(tile, q + t * q_stride, n, out + t * out_stride + j, valid);
    }
    return;
  }
#else
  (void)rows;
  (void)scale;
#endif
  for (size_t t = 0; t < nq; t += kKvMaxQueries) {
    DotQueriesRowsUpTo4(q + t * q_stride, q_stride, std::min(kKvMaxQueries, nq - t), make_row, idx, m, n,
                        out + t * out_stride, out_stride);
  }
}

template <class Row>
HWY_INLINE float DotRow(const float* q, const Row& row, size_t n) {
  float out = 0.0f;
  DotRowsR<1>(q, &row, n, NoRotation{}, &out);
  return out;
}

// y += p[j] * row j for j in order (axpy_f32's rounding), y held in registers kY vectors
// at a time. make_row(j) gives row j's reader.
template <class MakeRow>
HWY_INLINE void AxpyRows(const float* p, const MakeRow& make_row, size_t m, size_t n, float* y) {
  const DW d;
  const size_t N = hn::Lanes(d);
  constexpr size_t kY = kAxpyVecs<DW>;  // simd_sum-inl.h
  size_t i = 0;
  for (; i + kY * N <= n; i += kY * N) {
    hn::Vec<DW> acc[kY];
    for (size_t v = 0; v < kY; ++v) acc[v] = hn::LoadU(d, y + i + v * N);
    for (size_t j = 0; j < m; ++j) {
      const auto row = make_row(j);
      const auto va = hn::Set(d, p[j]);
      for (size_t v = 0; v < kY; ++v) acc[v] = hn::Add(acc[v], hn::Mul(va, row.Load(d, i + v * N)));
    }
    for (size_t v = 0; v < kY; ++v) hn::StoreU(acc[v], d, y + i + v * N);
  }
  for (size_t j = 0; j < m && i < n; ++j) {
    const auto row = make_row(j);
    for (size_t k = i; k < n; ++k) y[k] += p[j] * row.At(k);
  }
}

// AxpyRows for Q outputs over the same rows: y[t] += p[t][j] * row j for j in order,
// each y[t] the bits AxpyRows gives it alone; each row value is widened once for the Q
// outputs. kY vectors of each output are held in registers at a time (the count does not
// change the bits: each y value adds the rows in order).
template <size_t Q, class MakeRow>
HWY_INLINE void AxpyQueriesRows(const float* const* p, const MakeRow& make_row, size_t m, size_t n, float* const* y) {
  const DW d;
  const size_t N = hn::Lanes(d);
  // Half the vector registers (32 with 16-lane vectors, else 16) hold accumulators.
  constexpr size_t kY = std::max<size_t>(1, (hn::MaxLanes(DW()) >= 16 ? 16 : 8) / Q);
  size_t i = 0;
  for (; i + kY * N <= n; i += kY * N) {
    hn::Vec<DW> acc[Q][kY];
    for (size_t t = 0; t < Q; ++t) {
      for (size_t v = 0; v < kY; ++v) acc[t][v] = hn::LoadU(d, y[t] + i + v * N);
    }
    for (size_t j = 0; j < m; ++j) {
      const auto row = make_row(j);
      hn::Vec<DW> w[kY];
      for (size_t v = 0; v < kY; ++v) w[v] = row.Load(d, i + v * N);
      for (size_t t = 0; t < Q; ++t) {
        const auto pv = hn::Set(d, p[t][j]);
        for (size_t v = 0; v < kY; ++v) acc[t][v] = hn::Add(acc[t][v], hn::Mul(pv, w[v]));
      }
    }
    for (size_t t = 0; t < Q; ++t) {
      for (size_t v = 0; v < kY; ++v) hn::StoreU(acc[t][v], d, y[t] + i + v * N);
    }
  }
  if (i < n) {
    for (size_t t = 0; t < Q; ++t) {
      for (size_t j = 0; j < m; ++j) {
        const auto row = make_row(j);
        for (size_t k = i; k < n; ++k) y[t][k] += p[t][j] * row.At(k);
      }
    }
  }
}

template <class MakeRow>
HWY_INLINE void AxpyQueriesRowsAny(const float* const* p, size_t nq, const MakeRow& make_row, size_t m, size_t n,
                                   float* const* y) {
  switch (nq) {
    case 1:
      return AxpyRows(p[0], make_row, m, n, y[0]);
    case 2:
      return AxpyQueriesRows<2>(p, make_row, m, n, y);
    case 3:
      return AxpyQueriesRows<3>(p, make_row, m, n, y);
    default:
      return AxpyQueriesRows<4>(p, make_row, m, n, y);
  }
}

template <class Row>
HWY_INLINE void DecodeRow(const Row& row, size_t n, float* out) {
  const DW d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(row.Load(d, i), d, out + i);
  for (; i < n; ++i) out[i] = row.At(i);
}

// out[i] = k[i] * C[i] + k[partner(i)] * S[i] over [begin, end), partner = i + shift
// (NEOX halves; shift may be negative).
HWY_INLINE void RotateRange(const float* k, const float* c, const float* s, size_t begin, size_t end, ptrdiff_t shift,
                            float* out) {
  const DW d;
  const size_t N = hn::Lanes(d);
  size_t i = begin;
  for (; i + N <= end; i += N) {
    const auto kv = hn::LoadU(d, k + i);
    const auto pv = hn::LoadU(d, k + static_cast<ptrdiff_t>(i) + shift);
    hn::StoreU(hn::Add(hn::Mul(kv, hn::LoadU(d, c + i)), hn::Mul(pv, hn::LoadU(d, s + i))), d, out + i);
  }
  for (; i < end; ++i) out[i] = k[i] * c[i] + k[static_cast<ptrdiff_t>(i) + shift] * s[i];
}

// rotate_kv_row(): the rank's rotation of one widened key row.
HWY_INLINE void RotateRow(const float* k, const float* cs, size_t n, size_t n_rot, bool neox, float* out) {
  const float* c = cs;
  const float* s = cs + n_rot;
  if (neox) {
    const size_t half = n_rot / 2;
    RotateRange(k, c, s, 0, half, static_cast<ptrdiff_t>(half), out);
    RotateRange(k, c, s, half, n_rot, -static_cast<ptrdiff_t>(half), out);
  } else {
    size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
    // Adjacent pairs: the partner vector is the row vector with its pairs swapped (N is
    // even and i a multiple of N, so no pair straddles two vectors).
    const DW d;
    const size_t N = hn::Lanes(d);
    for (; i + N <= n_rot; i += N) {
      const auto kv = hn::LoadU(d, k + i);
      hn::StoreU(hn::Add(hn::Mul(kv, hn::LoadU(d, c + i)), hn::Mul(hn::Reverse2(d, kv), hn::LoadU(d, s + i))), d,
                 out + i);
    }
#endif
    for (; i < n_rot; ++i) out[i] = k[i] * c[i] + k[i ^ 1] * s[i];
  }
  if (n > n_rot) std::memcpy(out + n_rot, k + n_rot, (n - n_rot) * sizeof(float));
}

// Row idx[j] (rank rank[idx[j]]) widened, rotated by its rank in registers and dotted with q, four rows
// at a time. Taken where no vector straddles a rotated/unrotated or NEOX half boundary
// (n, n_rot and, for NEOX, n_rot / 2 multiples of 8: every head_dim / rotary width in
// use); per value it computes rotate_kv_row()'s k * C + partner * S, so the same bits.
template <size_t R, class Row>
HWY_INLINE void RopeDotRowsR(const float* q, const Row* rows, const float* const* cs, size_t n, size_t n_rot, bool neox,
                             float* out) {
  const D8 d;
  const size_t half = n_rot / 2;
  const auto rotate = [&](size_t r, size_t at, hn::Vec<D8> kv) {
    if (at >= n_rot) return kv;
    hn::Vec<D8> partner;
    if (neox) {
      partner = rows[r].Load(d, at < half ? at + half : at - half);
    } else {
#if HWY_TARGET == HWY_SCALAR
      partner = rows[r].Load(d, at ^ 1);  // one lane: its pair's other value
#else
      partner = hn::Reverse2(d, kv);  // pairs never straddle a vector (at and N are even)
#endif
    }
    return hn::Add(hn::Mul(kv, hn::LoadU(d, cs[r] + at)), hn::Mul(partner, hn::LoadU(d, cs[r] + n_rot + at)));
  };
  DotRowsR<R>(q, rows, n, rotate, out);
}

// Row idx[j] (rank rank[idx[j]]): widened (unless already f32), rotated, dotted with q; through the two
// row-sized scratch rows where the fused form does not apply.
template <class MakeRow>
HWY_INLINE void DotRowsRope(const float* q, const MakeRow& make_row, const uint32_t* idx, const uint32_t* rank,
                            size_t m, size_t n, const KvRopeRows& rope, float* scratch, float* out) {
  using Row = decltype(make_row(uint32_t{0}));
  const size_t n_rot = rope.n_rot, stride = 2 * n_rot;
  if (n % 8 == 0 && n_rot % 8 == 0 && (!rope.neox || n_rot % 16 == 0)) {
    size_t j = 0;
    for (size_t a = 0; a < std::min(m, kRowsAhead); ++a) PrefetchRow(make_row(idx[a]), n);
    for (; j + 4 <= m; j += 4) {
      for (size_t a = j + kRowsAhead; a < std::min(m, j + kRowsAhead + 4); ++a) PrefetchRow(make_row(idx[a]), n);
      const Row rows[4] = {make_row(idx[j]), make_row(idx[j + 1]), make_row(idx[j + 2]), make_row(idx[j + 3])};
      const float* cs[4] = {rope.cs + rank[idx[j]] * stride, rope.cs + rank[idx[j + 1]] * stride,
                            rope.cs + rank[idx[j + 2]] * stride, rope.cs + rank[idx[j + 3]] * stride};
      RopeDotRowsR<4>(q, rows, cs, n, n_rot, rope.neox, out + j);
    }
    for (; j < m; ++j) {
      const Row row = make_row(idx[j]);
      const float* cs = rope.cs + rank[idx[j]] * stride;
      RopeDotRowsR<1>(q, &row, &cs, n, n_rot, rope.neox, out + j);
    }
    return;
  }
  for (size_t j = 0; j < m; ++j) {
    const Row row = make_row(idx[j]);
    const float* k = scratch;
    if constexpr (std::is_same_v<Row, F32Row>) {
      k = row.p;
    } else {
      DecodeRow(row, n, scratch);
    }
    RotateRow(k, rope.cs + rank[idx[j]] * stride, n, n_rot, rope.neox, scratch + n);
    out[j] = DotRow(q, F32Row{scratch + n}, n);
  }
}

// encode_kv_row_q8() a vector at a time: max |x| (a NaN never wins, as with std::max), the
// fp16 scale as there, then x / d rounded half to even (Round, in the default rounding
// mode), a NaN stored as 0, clamped to [-127, 127].
void EncodeRowQ8(const float* x, size_t n, int8_t* out, uint16_t* scale) {
  const DW d;
  const size_t N = hn::Lanes(d);
  auto vmax = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::Abs(hn::LoadU(d, x + i));
    vmax = hn::IfThenElse(hn::Lt(vmax, a), a, vmax);
  }
  float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t dh = fp32_to_fp16(amax / 127.0f);
  const float df = fp16_to_fp32(dh);
  *scale = dh;
  if (df == 0.0f) {
    std::memset(out, 0, n);
    return;
  }
  const hn::Rebind<int32_t, DW> di;
  const hn::Rebind<int8_t, DW> d8;
  const auto vd = hn::Set(d, df), lo = hn::Set(d, -127.0f), hi = hn::Set(d, 127.0f);
  for (i = 0; i + N <= n; i += N) {
    auto v = hn::Round(hn::Div(hn::LoadU(d, x + i), vd));
    v = hn::IfThenZeroElse(hn::IsNaN(v), v);
    v = hn::Min(hn::Max(v, lo), hi);
    hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, v)), d8, out + i);
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] / df);
    out[i] = static_cast<int8_t>(v >= 127.0f ? 127.0f : v <= -127.0f ? -127.0f : v == v ? v : 0.0f);
  }
}

void DotRowsF16(const float* q, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* out) {
  DotRows(
      q, [&](uint32_t i) { return F16Row{rows + i * n}; }, idx, m, n, out);
}

void DotRowsQ8(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m, size_t n,
               float* out) {
  DotRows(
      q,
      [&](uint32_t i) {
        return Q8Row{rows + i * n, ScaleAt(scale, i)};
      },
      idx, m, n, out);
}

void AxpyRowsF16(const float* p, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n, float* y) {
  AxpyRows(
      p, [&](size_t j) { return F16Row{rows + idx[j] * n}; }, m, n, y);
}

void AxpyRowsQ8(const float* p, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, size_t m, size_t n,
                float* y) {
  AxpyRows(
      p,
      [&](size_t j) {
        return Q8Row{rows + idx[j] * n, ScaleAt(scale, idx[j])};
      },
      m, n, y);
}

void DotQueriesRowsF16(const float* q, size_t q_stride, size_t nq, const uint16_t* rows, const uint32_t* idx, size_t m,
                       size_t n, float* out, size_t out_stride) {
  DotQueriesRowsAny(
      q, q_stride, nq, rows, nullptr, [&](uint32_t i) { return F16Row{rows + i * n}; }, idx, m, n, out, out_stride);
}

void DotQueriesRowsQ8(const float* q, size_t q_stride, size_t nq, const int8_t* rows, const uint16_t* scale,
                      const uint32_t* idx, size_t m, size_t n, float* out, size_t out_stride) {
  DotQueriesRowsAny(
      q, q_stride, nq, rows, scale,
      [&](uint32_t i) {
        return Q8Row{rows + i * n, ScaleAt(scale, i)};
      },
      idx, m, n, out, out_stride);
}

void AxpyQueriesRowsF16(const float* const* p, size_t nq, const uint16_t* rows, const uint32_t* idx, size_t m, size_t n,
                        float* const* y) {
  AxpyQueriesRowsAny(
      p, nq, [&](size_t j) { return F16Row{rows + idx[j] * n}; }, m, n, y);
}

void AxpyQueriesRowsQ8(const float* const* p, size_t nq, const int8_t* rows, const uint16_t* scale, const uint32_t* idx,
                       size_t m, size_t n, float* const* y) {
  AxpyQueriesRowsAny(
      p, nq,
      [&](size_t j) {
        return Q8Row{rows + idx[j] * n, ScaleAt(scale, idx[j])};
      },
      m, n, y);
}

void DotRowsRopeF32(const float* q, const float* rows, const uint32_t* idx, const uint32_t* rank, size_t m, size_t n,
                    const KvRopeRows& rope, float* scratch, float* out) {
  DotRowsRope(
      q, [&](uint32_t i) { return F32Row{rows + i * n}; }, idx, rank, m, n, rope, scratch, out);
}

void DotRowsRopeF16(const float* q, const uint16_t* rows, const uint32_t* idx, const uint32_t* rank, size_t m, size_t n,
                    const KvRopeRows& rope, float* scratch, float* out) {
  DotRowsRope(
      q, [&](uint32_t i) { return F16Row{rows + i * n}; }, idx, rank, m, n, rope, scratch, out);
}

void DotRowsRopeQ8(const float* q, const int8_t* rows, const uint16_t* scale, const uint32_t* idx, const uint32_t* rank,
                   size_t m, size_t n, const KvRopeRows& rope, float* scratch, float* out) {
  DotRowsRope(
      q,
      [&](uint32_t i) {
        return Q8Row{rows + i * n, ScaleAt(scale, i)};
      },
      idx, rank, m, n, rope, scratch, out);
}

// lowest_outside_recent_reference's answer in vector passes over the slots (its one
// branch-free 64-bit minimum per slot has no vector form below AVX-512): the largest
// position and the refusals; the lowest score bits outside the protected run, and the
// run's count; the oldest position among the unprotected slots with those bits; its slot.
// Scores that pass the refusals are non-negative floats, whose bits order as int32 the
// way the values do, so a signed minimum over the bits finds the lowest score.
int LowestOutsideRecent(const float* score, const int32_t* pos, size_t n, int recent) {
  const hn::ScalableTag<int32_t> di;
  const hn::RebindToUnsigned<decltype(di)> du;
  const size_t N = hn::Lanes(di);
  const auto bits_at = [&](size_t i) { return hn::LoadU(di, reinterpret_cast<const int32_t*>(score + i)); };
  const auto bits_of = [&](size_t i) { return std::bit_cast<int32_t>(score[i]); };
  constexpr int32_t kNone = std::numeric_limits<int32_t>::max();
  const size_t count = static_cast<size_t>(std::clamp<int64_t>(recent, 0, static_cast<int64_t>(n)));
  const size_t n_vec = n / N * N;

  // 1. The largest position; any NaN or sign-bit score, any negative position.
  auto top_v = hn::Set(di, std::numeric_limits<int32_t>::min());
  auto bad_v = hn::Zero(du);
  const auto inf_bits = hn::Set(du, 0x7f800000u);
  for (size_t i = 0; i < n_vec; i += N) {
    const auto p = hn::LoadU(di, pos + i);
    top_v = hn::Max(top_v, p);
    const auto bad_score = hn::VecFromMask(du, hn::Gt(hn::BitCast(du, bits_at(i)), inf_bits));
    bad_v = hn::Or(bad_v, hn::Or(bad_score, hn::ShiftRight<31>(hn::BitCast(du, p))));
  }
  int32_t top = n_vec > 0 ? hn::GetLane(hn::MaxOfLanes(di, top_v)) : std::numeric_limits<int32_t>::min();
  bool bad = n_vec > 0 && !hn::AllTrue(du, hn::Eq(bad_v, hn::Zero(du)));
  for (size_t i = n_vec; i < n; ++i) {
    top = std::max(top, pos[i]);
    bad = bad || static_cast<uint32_t>(bits_of(i)) > 0x7f800000u || pos[i] < 0;
  }
  if (bad || n == 0) return -1;

  // 2. Positions at or beyond the edge are protected (none when count is 0); the lowest
  // score bits among the others, and how many are protected.
  const bool guard = count > 0;
  const int32_t edge = guard ? static_cast<int32_t>(static_cast<int64_t>(top) - static_cast<int64_t>(count - 1)) : 0;
  // (p >= edge as p > edge - 1: Highway has no integer Ge; edge > -n, so no overflow.)
  const auto below_edge_v = hn::Set(di, edge - 1), none_v = hn::Set(di, kNone);
  const auto protect = [&](auto p) { return guard ? hn::Gt(p, below_edge_v) : hn::Lt(p, hn::Zero(di)); };
  const auto protected_at = [&](size_t i) { return guard && pos[i] >= edge; };  // protect() for one slot
  auto low_v = none_v;
  auto in_run_v = hn::Zero(di);
  for (size_t i = 0; i < n_vec; i += N) {
    const auto prot = protect(hn::LoadU(di, pos + i));
    low_v = hn::Min(low_v, hn::IfThenElse(prot, none_v, bits_at(i)));
    in_run_v = hn::Sub(in_run_v, hn::VecFromMask(di, prot));
  }
  int32_t low = n_vec > 0 ? hn::GetLane(hn::MinOfLanes(di, low_v)) : kNone;
  size_t in_run = n_vec > 0 ? static_cast<size_t>(hn::GetLane(hn::SumOfLanes(di, in_run_v))) : 0;
  for (size_t i = n_vec; i < n; ++i) {
    if (protected_at(i)) {
      ++in_run;
    } else {
      low = std::min(low, bits_of(i));
    }
  }
  if (in_run != count || low == kNone) return -1;

  // 3. The oldest unprotected position with those bits: the reference's 64-bit minimum.
  const auto low_bits = hn::Set(di, low);
  auto oldest_v = none_v;
  for (size_t i = 0; i < n_vec; i += N) {
    const auto p = hn::LoadU(di, pos + i);
    const auto match = hn::AndNot(protect(p), hn::Eq(bits_at(i), low_bits));
    oldest_v = hn::Min(oldest_v, hn::IfThenElse(match, p, none_v));
  }
  int32_t victim = n_vec > 0 ? hn::GetLane(hn::MinOfLanes(di, oldest_v)) : kNone;
  for (size_t i = n_vec; i < n; ++i) {
    if (!protected_at(i) && bits_of(i) == low) victim = std::min(victim, pos[i]);
  }

  // 4. Its slot: the first with that position.
  const auto victim_v = hn::Set(di, victim);
  for (size_t i = 0; i < n_vec; i += N) {
    const intptr_t k = hn::FindFirstTrue(di, hn::Eq(hn::LoadU(di, pos + i), victim_v));
    if (k >= 0) return static_cast<int>(i + static_cast<size_t>(k));
  }
  for (size_t i = n_vec; i < n; ++i) {
    if (pos[i] == victim) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

void FillKvKernels(KvKernelTable& t) {
  t.encode_row_q8 = &EncodeRowQ8;
  t.dot_rows_f16 = &DotRowsF16;
  t.dot_rows_q8 = &DotRowsQ8;
  t.axpy_rows_f16 = &AxpyRowsF16;
  t.axpy_rows_q8 = &AxpyRowsQ8;
  t.dot_queries_f16 = &DotQueriesRowsF16;
  t.dot_queries_q8 = &DotQueriesRowsQ8;
  t.axpy_queries_f16 = &AxpyQueriesRowsF16;
  t.axpy_queries_q8 = &AxpyQueriesRowsQ8;
  t.dot_rows_rope_f32 = &DotRowsRopeF32;
  t.dot_rows_rope_f16 = &DotRowsRopeF16;
  t.dot_rows_rope_q8 = &DotRowsRopeQ8;
  t.lowest_outside_recent = &LowestOutsideRecent;
}

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <array>

#include "common/check.h"
#include "kernels/kv_reference.h"
#include "kernels/simd_index.h"

namespace h2o {

HWY_EXPORT(FillKvKernels);

void fill_kv_kernels(int64_t hwy_target, KvKernelTable& table) {
  HWY_DISPATCH_TABLE(FillKvKernels)[simd_table_index(hwy_target)](table);
}

const KvKernelTable& kv_kernels_for(const SimdTarget& target) {
  // One immutable table per available target, indexed like dispatch.cpp's: the target's
  // bit position, 63 for the scalar reference.
  const auto slot = [](const SimdTarget& t) -> size_t {
    return t.is_reference() ? 63 : hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(t.hwy_target));
  };
  static const std::array<KvKernelTable, 64> tables = [&] {
    std::array<KvKernelTable, 64> all{};
    for (const auto& t : available_simd_targets()) {
      KvKernelTable& k = all[slot(t)];
      if (t.is_reference()) {
        k = kv_reference_kernels();
      } else {
        fill_kv_kernels(t.hwy_target, k);
      }
      k.name = t.name.data();
    }
    return all;
  }();
  const KvKernelTable& k = tables[slot(target)];
  if (k.dot_rows_f16 == nullptr) fail("SIMD target {} is not available on this CPU", target.name);
  return k;
}

const KvKernelTable& active_kv_kernels() {
  static const KvKernelTable& k = kv_kernels_for(active_simd_target());
  return k;
}

}  // namespace h2o
#endif  // HWY_ONCE
