// Matrix products of Q4_K / Q6_K weights (GGUF k-quants, super-blocks of 256 values, read
// row by row as stored) with Q8_0 activations, in integer arithmetic per 32 values, for
// every compiled Highway target.
//
// The order is dot_q4_k_q8_blocks / dot_q6_k_q8_blocks (reference.h): one float lane per
// 32-value slice k of a super-block, so a __m256 holds a row's eight lanes; each slice's
// exact int32 sum p_k is scaled by vector float operations (multiply, then add; never
// fused), and the lanes are combined by a halving sum at the end. Results are bit-identical
// on every target and to the references.
//
// Per row and super-block the weights are unpacked once into eight vectors of 32 u8 values
// (one per slice) and used for TT tokens; u8 x s8 dots (AVX-512 VNNI vpdpbusd, else
// maddubs + madd) give exact int32 sums; Q6_K's per slice: the sums of its two 16-value
// halves times their int8 scales, added.
// One token (decode): per slice one dot gives eight int32 sums of 4 values, reduced to the
// slice sums by horizontal adds; Q4_K q (0..15) x a, Q6_K |q - 32| x (a with the sign of
// q - 32). Several tokens (prefill): the unpacked weights and the chunk's activations are
// transposed (8 x 8 lanes of 4 bytes: vector g lane k = values 4g..4g+3 of slice k), so
// eight dots accumulate every slice's sum in its own lane with no reduction; the weights'
// transposition is shared by the tile's tokens, the activations' by the call's rows;
// Q6_K q (0..63) x a minus 32 times the activations' half sums (computed with the
// transposition). On AVX-512 targets these tiles take two rows in 512-bit vectors.
// The int32 sums are the same on every path, so are the results.
// Targets below AVX2 run the scalar references row by row.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kquant.cpp"
// clang-format off
#include "kernels/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/reference.h"
#include "kernels/vnni-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace {

constexpr size_t kQ4KBytes = 144;
constexpr size_t kQ6KBytes = 210;

// Tokens per chunk: their activations stay in L2 while the thread's rows pass over them.
constexpr size_t kTokChunk = 64;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

constexpr size_t kTokTile = HWY_TARGET <= HWY_AVX3 ? 8 : 4;

HWY_INLINE uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

HWY_INLINE __m256i LoadU(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// acc + eight int32 lanes: lane L = sum of u[4L + m] * s[4L + m], m < 4 (u unsigned, s
// signed).
HWY_INLINE __m256i DotAcc(__m256i acc, __m256i u, __m256i s) {
#if HWY_TARGET == HWY_AVX3_DL
  return vnni::DpBusd(acc, u, s);
#else
  // Each int16 lane is at most 2 * 32 * 128 (Q6_K) or 2 * 15 * 127 (Q4_K): no saturation.
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
HWY_INLINE __m256i DotU8S8(__m256i u, __m256i s) { return DotAcc(_mm256_setzero_si256(), u, s); }

// x[c] (8 lanes of 4-value sums of slice c) -> two vectors, chunks of slices c0..c0+3:
// [lo c0, lo c0+1, lo c0+2, lo c0+3 | hi c0, .., hi c0+3], lo/hi the sums of the slice's
// first / last 16 values.
HWY_INLINE __m256i Halves4(const __m256i* x) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(x[0], x[1]), _mm256_hadd_epi32(x[2], x[3]));
}

// [lo 0..3 | hi 0..3], [lo 4..7 | hi 4..7] -> lane k = lo k + hi k.
HWY_INLINE __m256i Combine(__m256i h03, __m256i h47) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(h03, h47, 0x20), _mm256_permute2x128_si256(h03, h47, 0x31));
}

// The halving sum of eight lanes (reference.h).
HWY_INLINE float HalvingSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 x 8 transposition of 32-bit lanes: v[g] lane k <- v[k] lane g.
HWY_INLINE void Transpose8(__m256i* v) {
  __m256i t[8], u[8];
  for (size_t i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (size_t i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (size_t g = 0; g < 4; ++g) {
    v[g] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x20);
    v[g + 4] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x31);
  }
}

// Activations of tokens [t0, t1) transposed per super-block (Transpose8), token t at
// dst + (t - t0) * cols; and 32 times the sums of each slice's first / last 16 values,
// half32 + ((t - t0) * cols / 256 + i) * 16 + k / + 8 + k (int32 lanes, for Q6_K's -32).
HWY_INLINE void TransposeActivations(const GemmArgs& a, size_t t0, size_t t1, int8_t* dst, int32_t* half32) {
  const __m256i ones8 = _mm256_set1_epi8(1);
  for (size_t t = t0; t < t1; ++t) {
    for (size_t i = 0; i < a.cols / 256; ++i) {
      const int8_t* x = a.xq.qs + t * a.cols + 256 * i;
      int8_t* y = dst + (t - t0) * a.cols + 256 * i;
      __m256i v[8];
      for (size_t c = 0; c < 8; ++c) v[c] = LoadU(x + 32 * c);
      Transpose8(v);
      for (size_t c = 0; c < 8; ++c) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 32 * c), v[c]);
      __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
      for (size_t g = 0; g < 4; ++g) {
        lo = _mm256_add_epi32(lo, DotU8S8(ones8, v[g]));
        hi = _mm256_add_epi32(hi, DotU8S8(ones8, v[g + 4]));
      }
      int32_t* h = half32 + ((t - t0) * (a.cols / 256) + i) * 16;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(h), _mm256_slli_epi32(lo, 5));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + 8), _mm256_slli_epi32(hi, 5));
    }
  }
}

// A Q4_K super-block's values (eight vectors of 32 u8, one per slice; transposed: vector
// g lane k = values 4g..4g+3 of slice k) and d * scale, dmin * min of each slice.
template <bool kTransposed>
HWY_INLINE void Q4KWeights(const uint8_t* blk, __m256i* w, __m256& ds, __m256& dm) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (size_t c = 0; c < 4; ++c) {
    const __m256i v = LoadU(blk + 16 + 32 * c);
    w[2 * c] = _mm256_and_si256(v, low);
    w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  }
  if constexpr (kTransposed) Transpose8(w);
  // Scales and mins (ggml's get_scale_min_k4 for all eight at once): bytes 0..7 of sm
  // the scales, 8..15 the mins.
  // (Built in registers: four 32-bit stores read back as one vector stall the load.)
  const uint32_t u0 = LoadU32(blk + 4), u1 = LoadU32(blk + 8), u2 = LoadU32(blk + 12);
  const uint32_t sc_lo = u0 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_lo = u1 & 0x3F3F3F3Fu;
  const uint32_t m_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
  const __m128i sm =
      _mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), static_cast<int>(m_lo), static_cast<int>(m_hi));
  const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(LoadU32(blk))));
  const __m256 dw = _mm256_broadcastss_ps(dd);
  const __m256 dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd));
  ds = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
  dm = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
}

// A Q6_K super-block's values q (0..63, as Q4KWeights).
template <bool kTransposed>
HWY_INLINE void Q6KWeights(const uint8_t* blk, __m256i* w) {
  const __m256i low = _mm256_set1_epi8(0x0F), high = _mm256_set1_epi8(0x30);
  for (size_t h = 0; h < 2; ++h) {
    const __m256i ql0 = LoadU(blk + 64 * h), ql1 = LoadU(blk + 64 * h + 32), qh = LoadU(blk + 128 + 32 * h);
    w[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, low), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high));
    w[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high));
    w[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), _mm256_and_si256(qh, high));
    w[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), high));
  }
  if constexpr (kTransposed) Transpose8(w);
}

// Transposed Q6_K scales as int32: of each slice's first 16 values (even) and last 16 (odd).
HWY_INLINE void Q6KScalesT(const uint8_t* blk, __m256i& even, __m256i& odd) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  even = _mm256_srai_epi32(_mm256_slli_epi32(sc16, 16), 16);
  odd = _mm256_srai_epi32(sc16, 16);
}

HWY_INLINE __m256 Q6KScale(const uint8_t* blk) {
  return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(blk[208] | (blk[209] << 8))));
}

HWY_INLINE void StoreTokens(const GemmArgs& a, size_t r, size_t t0, size_t tt, const __m256* acc) {
  for (size_t t = 0; t < tt; ++t) a.out[(t0 + t) * a.out_stride + r] = HalvingSum(acc[t]);
}

// Row r against tokens t0 .. t0 + TT; TT > 1: their transposed activations at xt.
template <size_t TT>
HWY_INLINE void Q4KTile(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt) {
  const size_t nb = a.cols / 32;
  const uint8_t* row = a.w + r * a.row_bytes;
  __m256 acc[TT];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (size_t i = 0; i < a.cols / 256; ++i) {
    __m256i w[8];
    __m256 ds, dm;
    Q4KWeights<(TT > 1)>(row + i * kQ4KBytes, w, ds, dm);
    for (size_t t = 0; t < TT; ++t) {
      const size_t tok = t0 + t;
      __m256i p;
      if constexpr (TT == 1) {
        const int8_t* x = a.xq.qs + tok * a.cols + 256 * i;
        __m256i s[8];
        for (size_t c = 0; c < 8; ++c) s[c] = DotU8S8(w[c], LoadU(x + 32 * c));
        p = Combine(Halves4(s), Halves4(s + 4));
      } else {
        const int8_t* x = xt + t * a.cols + 256 * i;
#if HWY_TARGET == HWY_AVX3_DL
        __m256i s0 = DotU8S8(w[0], LoadU(x)), s1 = DotU8S8(w[1], LoadU(x + 32));
        for (size_t g = 2; g < 8; g += 2) {
          s0 = DotAcc(s0, w[g], LoadU(x + 32 * g));
          s1 = DotAcc(s1, w[g + 1], LoadU(x + 32 * g + 32));
        }
        p = _mm256_add_epi32(s0, s1);
#else
        // int16 lanes: at most 8 * 2 * 15 * 127 < 2^15.
        __m256i pairs = _mm256_maddubs_epi16(w[0], LoadU(x));
        for (size_t g = 1; g < 8; ++g) pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w[g], LoadU(x + 32 * g)));
        p = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
#endif
      }
      const __m256 da = _mm256_loadu_ps(a.xq.d + tok * nb + 8 * i);
      const __m256 bsum = _mm256_cvtepi32_ps(LoadU(a.xq.sum + tok * nb + 8 * i));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(ds, da)));
      acc[t] = _mm256_sub_ps(acc[t], _mm256_mul_ps(bsum, _mm256_mul_ps(dm, da)));
    }
  }
  StoreTokens(a, r, t0, TT, acc);
}

template <size_t TT>
HWY_INLINE void Q6KTile(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* half32) {
  const size_t nb = a.cols / 32;
  const uint8_t* row = a.w + r * a.row_bytes;
  const __m256i off = _mm256_set1_epi8(32);
  // Scales of slices 0..3 / 4..7 in the lane order of Halves4.
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  __m256 acc[TT];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (size_t i = 0; i < a.cols / 256; ++i) {
    const uint8_t* blk = row + i * kQ6KBytes;
    __m256i w[8], mag[8];
    Q6KWeights<(TT > 1)>(blk, w);
    if constexpr (TT == 1) {
      for (size_t c = 0; c < 8; ++c) {
        w[c] = _mm256_sub_epi8(w[c], off);  // q - 32, signed
        mag[c] = _mm256_abs_epi8(w[c]);
      }
    }
    __m256i sc03, sc47;  // TT > 1: scales of the first / last 16 values of each slice
    if constexpr (TT == 1) {
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
      sc03 = _mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi32(sc8), order);
      sc47 = _mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8)), order);
    } else {
      Q6KScalesT(blk, sc03, sc47);
    }
    const __m256 dw = Q6KScale(blk);
    for (size_t t = 0; t < TT; ++t) {
      const size_t tok = t0 + t;
      __m256i p;
      if constexpr (TT == 1) {
        const int8_t* x = a.xq.qs + tok * a.cols + 256 * i;
        __m256i s[8];
        for (size_t c = 0; c < 8; ++c) s[c] = DotU8S8(mag[c], _mm256_sign_epi8(LoadU(x + 32 * c), w[c]));
        p = Combine(_mm256_mullo_epi32(Halves4(s), sc03), _mm256_mullo_epi32(Halves4(s + 4), sc47));
      } else {
        // q (0..63) x a, minus 32 times the activations' half sums.
        const int8_t* x = xt + t * a.cols + 256 * i;
        const int32_t* h = half32 + (t * (a.cols / 256) + i) * 16;
        __m256i lo = DotU8S8(w[0], LoadU(x)), hi = DotU8S8(w[4], LoadU(x + 128));
        for (size_t g = 1; g < 4; ++g) {
          lo = DotAcc(lo, w[g], LoadU(x + 32 * g));
          hi = DotAcc(hi, w[g + 4], LoadU(x + 32 * g + 128));
        }
        lo = _mm256_sub_epi32(lo, LoadU(h));
        hi = _mm256_sub_epi32(hi, LoadU(h + 8));
        p = _mm256_add_epi32(_mm256_mullo_epi32(lo, sc03), _mm256_mullo_epi32(hi, sc47));
      }
      const __m256 da = _mm256_loadu_ps(a.xq.d + tok * nb + 8 * i);
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, da)));
    }
  }
  StoreTokens(a, r, t0, TT, acc);
}

#if HWY_TARGET <= HWY_AVX3
// Rows r and r + 1 in the two halves of 512-bit vectors (lanes 0..7 row r, 8..15 row
// r + 1) against transposed tokens: the same operations lane for lane as the one-row tiles,
// half the instructions per row (the activations broadcast to both halves).
HWY_INLINE __m512i Pair(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
HWY_INLINE __m512 Pair(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}
HWY_INLINE __m512i Bcast(const void* p) { return _mm512_broadcast_i64x4(LoadU(p)); }
HWY_INLINE __m512 BcastF(const float* p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

HWY_INLINE __m512i DotAcc(__m512i acc, __m512i u, __m512i s) {
#if HWY_TARGET == HWY_AVX3_DL
  return vnni::DpBusd(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}
HWY_INLINE __m512i DotU8S8(__m512i u, __m512i s) { return DotAcc(_mm512_setzero_si512(), u, s); }

template <size_t TT>
HWY_INLINE void StorePair(const GemmArgs& a, size_t r, size_t t0, const __m512* acc) {
  for (size_t t = 0; t < TT; ++t) {
    float* out = a.out + (t0 + t) * a.out_stride + r;
    out[0] = HalvingSum(_mm512_castps512_ps256(acc[t]));
    out[1] = HalvingSum(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1)));
  }
}

template <size_t TT>
HWY_INLINE void Q4KTile2(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* /*half32*/) {
  const size_t nb = a.cols / 32;
  const uint8_t* row = a.w + r * a.row_bytes;
  __m512 acc[TT];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (size_t i = 0; i < a.cols / 256; ++i) {
    __m256i w0[8], w1[8];
    __m256 ds0, dm0, ds1, dm1;
    Q4KWeights<true>(row + i * kQ4KBytes, w0, ds0, dm0);
    Q4KWeights<true>(row + a.row_bytes + i * kQ4KBytes, w1, ds1, dm1);
    __m512i w[8];
    for (size_t g = 0; g < 8; ++g) w[g] = Pair(w0[g], w1[g]);
    const __m512 ds = Pair(ds0, ds1), dm = Pair(dm0, dm1);
    for (size_t t = 0; t < TT; ++t) {
      const size_t tok = t0 + t;
      const int8_t* x = xt + t * a.cols + 256 * i;
#if HWY_TARGET == HWY_AVX3_DL
      __m512i s0 = DotU8S8(w[0], Bcast(x)), s1 = DotU8S8(w[1], Bcast(x + 32));
      for (size_t g = 2; g < 8; g += 2) {
        s0 = DotAcc(s0, w[g], Bcast(x + 32 * g));
        s1 = DotAcc(s1, w[g + 1], Bcast(x + 32 * g + 32));
      }
      const __m512i p = _mm512_add_epi32(s0, s1);
#else
      __m512i pairs = _mm512_maddubs_epi16(w[0], Bcast(x));
      for (size_t g = 1; g < 8; ++g) pairs = _mm512_add_epi16(pairs, _mm512_maddubs_epi16(w[g], Bcast(x + 32 * g)));
      const __m512i p = _mm512_madd_epi16(pairs, _mm512_set1_epi16(1));
#endif
      const __m512 da = BcastF(a.xq.d + tok * nb + 8 * i);
      const __m512 bsum = _mm512_cvtepi32_ps(Bcast(a.xq.sum + tok * nb + 8 * i));
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(ds, da)));
      acc[t] = _mm512_sub_ps(acc[t], _mm512_mul_ps(bsum, _mm512_mul_ps(dm, da)));
    }
  }
  StorePair<TT>(a, r, t0, acc);
}

// Q6_K: q (0..63) x a, minus 32 times the activations' half sums (half32), times the scales.
template <size_t TT>
HWY_INLINE void Q6KTile2(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* half32) {
  const size_t nb = a.cols / 32, nsb = a.cols / 256;
  const uint8_t* row = a.w + r * a.row_bytes;
  __m512 acc[TT];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (size_t i = 0; i < nsb; ++i) {
    const uint8_t* b0 = row + i * kQ6KBytes;
    const uint8_t* b1 = b0 + a.row_bytes;
    __m256i q0[8], q1[8], e0, o0, e1, o1;
    Q6KWeights<true>(b0, q0);
    Q6KWeights<true>(b1, q1);
    Q6KScalesT(b0, e0, o0);
    Q6KScalesT(b1, e1, o1);
    __m512i q[8];
    for (size_t g = 0; g < 8; ++g) q[g] = Pair(q0[g], q1[g]);
    const __m512i even = Pair(e0, e1), odd = Pair(o0, o1);
    const __m512 dw = Pair(Q6KScale(b0), Q6KScale(b1));
    for (size_t t = 0; t < TT; ++t) {
      const size_t tok = t0 + t;
      const int8_t* x = xt + t * a.cols + 256 * i;
      const int32_t* h = half32 + (t * nsb + i) * 16;
      __m512i lo = DotU8S8(q[0], Bcast(x)), hi = DotU8S8(q[4], Bcast(x + 128));
      for (size_t g = 1; g < 4; ++g) {
        lo = DotAcc(lo, q[g], Bcast(x + 32 * g));
        hi = DotAcc(hi, q[g + 4], Bcast(x + 32 * g + 128));
      }
      lo = _mm512_sub_epi32(lo, Bcast(h));
      hi = _mm512_sub_epi32(hi, Bcast(h + 8));
      const __m512i p = _mm512_add_epi32(_mm512_mullo_epi32(lo, even), _mm512_mullo_epi32(hi, odd));
      const __m512 da = BcastF(a.xq.d + tok * nb + 8 * i);
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, da)));
    }
  }
  StorePair<TT>(a, r, t0, acc);
}
constexpr bool kRowPairs = true;
#else
constexpr bool kRowPairs = false;
#endif

struct Q4K {
  template <size_t TT>
  static void Tile(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* /*half32*/) {
    Q4KTile<TT>(a, r, t0, xt);
  }
#if HWY_TARGET <= HWY_AVX3
  template <size_t TT>
  static void Tile2(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* half32) {
    Q4KTile2<TT>(a, r, t0, xt, half32);
  }
#endif
};
struct Q6K {
  template <size_t TT>
  static void Tile(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* half32) {
    Q6KTile<TT>(a, r, t0, xt, half32);
  }
#if HWY_TARGET <= HWY_AVX3
  template <size_t TT>
  static void Tile2(const GemmArgs& a, size_t r, size_t t0, const int8_t* xt, const int32_t* half32) {
    Q6KTile2<TT>(a, r, t0, xt, half32);
  }
#endif
};

template <class Format>
void KQuantGemm(const GemmArgs& a, size_t row_begin, size_t row_end) {
  thread_local std::vector<int8_t> transposed;
  thread_local std::vector<int32_t> half32;
  for (size_t c0 = 0; c0 < a.n_tokens; c0 += kTokChunk) {
    const size_t c1 = std::min(a.n_tokens, c0 + kTokChunk);
    // Tokens [c0, tiled) go in tiles of 4 or more (transposed activations), the rest alone.
    const size_t tiled = c0 + (c1 - c0) / 4 * 4;
    if (tiled > c0) {
      transposed.resize((tiled - c0) * a.cols);
      half32.resize((tiled - c0) * a.cols / 16);
      TransposeActivations(a, c0, tiled, transposed.data(), half32.data());
    }
    const auto xt = [&](size_t t) { return transposed.data() + (t - c0) * a.cols; };
    const auto ht = [&](size_t t) { return half32.data() + (t - c0) * a.cols / 16; };
    size_t r = row_begin;
    if constexpr (kRowPairs) {
#if HWY_TARGET <= HWY_AVX3
      for (; tiled > c0 && r + 2 <= row_end; r += 2) {
        size_t t = c0;
        for (; t + 8 <= tiled; t += 8) Format::template Tile2<8>(a, r, t, xt(t), ht(t));
        for (; t + 4 <= tiled; t += 4) Format::template Tile2<4>(a, r, t, xt(t), ht(t));
        for (t = tiled; t < c1; ++t) {
          Format::template Tile<1>(a, r, t, nullptr, nullptr);
          Format::template Tile<1>(a, r + 1, t, nullptr, nullptr);
        }
      }
#endif
    }
    for (; r < row_end; ++r) {
      size_t t = c0;
      for (; t + kTokTile <= tiled; t += kTokTile) Format::template Tile<kTokTile>(a, r, t, xt(t), ht(t));
      if constexpr (kTokTile > 4) {
        for (; t + 4 <= tiled; t += 4) Format::template Tile<4>(a, r, t, xt(t), ht(t));
      }
      for (; t < c1; ++t) Format::template Tile<1>(a, r, t, nullptr, nullptr);
    }
  }
}

void GemmQ4K(const GemmArgs& a, size_t row_begin, size_t row_end) { KQuantGemm<Q4K>(a, row_begin, row_end); }
void GemmQ6K(const GemmArgs& a, size_t row_begin, size_t row_end) { KQuantGemm<Q6K>(a, row_begin, row_end); }

#else  // portable: the scalar references, row by row

void GemmQ4K(const GemmArgs& a, size_t row_begin, size_t row_end) {
  const size_t nb = a.cols / 32;
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t t = 0; t < a.n_tokens; ++t) {
      a.out[t * a.out_stride + r] =
          dot_q4_k_q8_blocks(a.w + r * a.row_bytes, a.xq.qs + t * a.cols, a.xq.d + t * nb, a.xq.sum + t * nb, a.cols);
    }
  }
}

void GemmQ6K(const GemmArgs& a, size_t row_begin, size_t row_end) {
  const size_t nb = a.cols / 32;
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t t = 0; t < a.n_tokens; ++t) {
      a.out[t * a.out_stride + r] =
          dot_q6_k_q8_blocks(a.w + r * a.row_bytes, a.xq.qs + t * a.cols, a.xq.d + t * nb, a.cols);
    }
  }
}

#endif

}  // namespace

void FillKQuantKernels(KernelTable& t) {
  t.gemm_q4_k = &GemmQ4K;
  t.gemm_q6_k = &GemmQ6K;
}

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/simd_index.h"

namespace h2o {

HWY_EXPORT(FillKQuantKernels);

void fill_kquant_kernels(int64_t hwy_target, KernelTable& table) {
  HWY_DISPATCH_TABLE(FillKQuantKernels)[simd_table_index(hwy_target)](table);
}

}  // namespace h2o
#endif  // HWY_ONCE
