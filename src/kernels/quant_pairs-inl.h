// Per-target primitives of the quantized products (Highway "-inl" header, compiled once per
// target; included by simd_quant.cpp inside its per-target namespace).
//
// The products go two 32-value blocks at a time (a "pair": blocks b and b + 1, b even) into
// 16 float lanes per output: lanes 0-7 take block b, lanes 8-15 block b + 1, lane j of a
// block the exact int32 sum of its products 4j..4j+3. A pair is two 256-bit vectors from
// AVX2 up (512-bit vectors measured no faster on Zen 4), four of 128 bits with SSE4.
//
//   WPair LoadWPair<Format>(blk0, blk1)  weights of two blocks (blk1 null: a zero block)
//   APair LoadAPair(a, two)              64 activation values (two false: 32 and zeros)
//   PairSums(w, a, p)                    p[v] = the 16 lanes' exact sums, as floats
//   PairScales(s0, s1, scale)            s0 in lanes 0-7, s1 in lanes 8-15
//
// x86 sums u8 x s8 products: |w| times a with the sign of w. A pair of them is at most
// 2 * 128 * 127 < 2^15 (activations are within +-127), so maddubs never saturates.

#if defined(H2O_KERNELS_QUANT_PAIRS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H2O_KERNELS_QUANT_PAIRS_INL_H_
#undef H2O_KERNELS_QUANT_PAIRS_INL_H_
#else
#define H2O_KERNELS_QUANT_PAIRS_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace quant {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::CappedTag<float, 8>;  // 256 bits at most
using VF = hn::Vec<DF>;
constexpr size_t kN = hn::MaxLanes(DF());
constexpr size_t kV = 16 / kN;  // vectors per pair

// Signed block values: Q8_0 as stored; Q4_0 element j < 16 the low nibble of byte j,
// element j + 16 its high nibble, minus 8. `q` points after the block's fp16 scale.
struct Q8_0Format {
  static constexpr size_t kBytes = 34;
};
struct Q4_0Format {
  static constexpr size_t kBytes = 18;
};

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // AVX2, AVX3, AVX3_DL: two 256-bit vectors

HWY_INLINE __m256i LoadBlock(Q8_0Format, const uint8_t* q) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
}
HWY_INLINE __m256i LoadBlock(Q4_0Format, const uint8_t* q) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i low = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(packed, low), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
  return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}
template <class Format>
HWY_INLINE __m256i LoadBlockOrZero(const uint8_t* blk) {
  return blk ? LoadBlock(Format(), blk + 2) : _mm256_setzero_si256();
}

struct WPair {
  __m256i w[2], u[2];
};
struct APair {
  __m256i a[2];
};

template <class Format>
HWY_INLINE WPair LoadWPair(const uint8_t* blk0, const uint8_t* blk1) {
  const __m256i w0 = LoadBlockOrZero<Format>(blk0), w1 = LoadBlockOrZero<Format>(blk1);
  return {{w0, w1}, {_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(w1, w1)}};
}
HWY_INLINE APair LoadAPair(const int8_t* a, bool two) {
  return {{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)),
           two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 32)) : _mm256_setzero_si256()}};
}

#if HWY_TARGET == HWY_AVX3_DL
// Four u8 x s8 products summed into each int32 lane in one instruction (AVX512-VNNI
// vpdpbusd, 256 bits). Inline assembly: Highway 1.0.3's AVX3_DL target enables the VEX
// AVX-VNNI intrinsics (which Zen 4 lacks), not the EVEX AVX512-VNNI ones.
HWY_INLINE __m256i SumQuads(__m256i u, __m256i s) {
  __m256i acc = _mm256_setzero_si256();
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
}
#else
HWY_INLINE __m256i SumQuads(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
#endif

HWY_INLINE void PairSums(const WPair& w, const APair& a, VF (&p)[kV]) {
  for (size_t h = 0; h < 2; ++h) {
    p[h] = hn::ConvertTo(DF(), hn::Vec256<int32_t>{SumQuads(w.u[h], _mm256_sign_epi8(a.a[h], w.w[h]))});
  }
}

#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_SSSE3  // four 128-bit vectors

struct WPair {
  __m128i w[4], u[4];
};
struct APair {
  __m128i a[4];
};

HWY_INLINE void LoadBlock(Q8_0Format, const uint8_t* q, __m128i* w) {
  w[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  w[1] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
}
HWY_INLINE void LoadBlock(Q4_0Format, const uint8_t* q, __m128i* w) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  w[0] = _mm_sub_epi8(_mm_and_si128(packed, low), eight);
  w[1] = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low), eight);
}
template <class Format>
HWY_INLINE WPair LoadWPair(const uint8_t* blk0, const uint8_t* blk1) {
  WPair p;
  LoadBlock(Format(), blk0 + 2, p.w);
  if (blk1) {
    LoadBlock(Format(), blk1 + 2, p.w + 2);
  } else {
    p.w[2] = p.w[3] = _mm_setzero_si128();
  }
  for (size_t h = 0; h < 4; ++h) p.u[h] = _mm_sign_epi8(p.w[h], p.w[h]);
  return p;
}
HWY_INLINE APair LoadAPair(const int8_t* a, bool two) {
  APair p;
  for (size_t h = 0; h < 4; ++h) {
    p.a[h] = h < 2 || two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16 * h)) : _mm_setzero_si128();
  }
  return p;
}
HWY_INLINE void PairSums(const WPair& w, const APair& a, VF (&p)[kV]) {
  for (size_t h = 0; h < 4; ++h) {
    const __m128i pairs = _mm_maddubs_epi16(w.u[h], _mm_sign_epi8(a.a[h], w.w[h]));
    p[h] = hn::ConvertTo(DF(), hn::Vec128<int32_t>{_mm_madd_epi16(pairs, _mm_set1_epi16(1))});
  }
}

#else  // portable: exact sums in scalar code

struct WPair {
  int8_t w[64];
};
struct APair {
  int8_t a[64];
};

HWY_INLINE void LoadBlock(Q8_0Format, const uint8_t* q, int8_t* w) { std::memcpy(w, q, 32); }
HWY_INLINE void LoadBlock(Q4_0Format, const uint8_t* q, int8_t* w) {
  for (size_t j = 0; j < 16; ++j) {
    w[j] = static_cast<int8_t>((q[j] & 0xF) - 8);
    w[j + 16] = static_cast<int8_t>((q[j] >> 4) - 8);
  }
}
template <class Format>
HWY_INLINE WPair LoadWPair(const uint8_t* blk0, const uint8_t* blk1) {
  WPair p = {};
  LoadBlock(Format(), blk0 + 2, p.w);
  if (blk1) LoadBlock(Format(), blk1 + 2, p.w + 32);
  return p;
}
HWY_INLINE APair LoadAPair(const int8_t* a, bool two) {
  APair p = {};
  std::memcpy(p.a, a, two ? 64 : 32);
  return p;
}
HWY_INLINE void PairSums(const WPair& w, const APair& a, VF (&p)[kV]) {
  HWY_ALIGN float sums[16];
  for (size_t j = 0; j < 16; ++j) {
    int32_t s = 0;
    for (size_t k = 4 * j; k < 4 * j + 4; ++k) s += int32_t{w.w[k]} * int32_t{a.a[k]};
    sums[j] = static_cast<float>(s);
  }
  for (size_t v = 0; v < kV; ++v) p[v] = hn::Load(DF(), sums + v * kN);
}

#endif

HWY_INLINE void PairScales(float s0, float s1, VF (&scale)[kV]) {
  for (size_t v = 0; v < kV; ++v) scale[v] = hn::Set(DF(), v < kV / 2 ? s0 : s1);
}

}  // namespace quant
}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
