// Per-target primitive of the packed quantized products (Highway "-inl" header, compiled
// once per target; included by simd_quant.cpp inside its per-target namespace): the
// exact int32 sums of one block of a packed group (format/packed_quant.h) against one
// token's 32 activations, for the group's 8 rows at once.
//
//   WBlock LoadWBlock(Format, qs)          a group's block: 8 quads of 8 rows x 4 bytes
//   RowSums(Format, w, a, a_sum, sums)     sums[i] = sum_k w_i[k] * a[k] for rows i < 8
//
// Quad q of the block (values 4q..4q+3) holds one 32-bit lane per row; the 4 activations
// of quad q are broadcast to every lane and the 4 products summed in the lane:
//   AVX-512 VNNI: vpdpbusd on the unsigned stored bytes (w + offset), then minus
//                 offset * a_sum, exact in int32;
//   AVX2/AVX-512: Q4_0 maddubs on the stored nibbles (0..15): each int16 lane is at most
//                 2 * 15 * 127, so the 8 quads are summed in int16 (8 * 3810 < 2^15),
//                 then widened by one madd; minus 8 * a_sum;
//                 Q8_0 the signed values (stored XOR 0x80), |w| times a with the sign of
//                 w (maddubs cannot take w + 128: 2 * 255 * 127 overflows int16);
//   elsewhere:    scalar loops.
// Every path computes the same integers, so results are identical on every target.

#if defined(H2O_KERNELS_PACKED_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H2O_KERNELS_PACKED_DOT_INL_H_
#undef H2O_KERNELS_PACKED_DOT_INL_H_
#else
#define H2O_KERNELS_PACKED_DOT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/vnni-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace packed {

// Packed value bytes per block of a group, the offset every stored value carries, and how
// far ahead (bytes) one-token products prefetch the weights they stream from memory.
// Measured on Zen 4, TinyLlama decode with 2 threads: Q4_0 spends twice the instructions
// per byte of Q8_0, so the out-of-order window covers too few bytes to keep memory busy:
// 2 KiB ahead took it from 23 to 40 tokens/s; Q8_0 was as fast or faster without.
struct Q8_0Format {
  static constexpr size_t kQs = 256;
  static constexpr int32_t kOffset = 128;
  static constexpr size_t kPrefetch = 0;
};
struct Q4_0Format {
  static constexpr size_t kQs = 128;
  static constexpr int32_t kOffset = 8;
  static constexpr size_t kPrefetch = 2048;
};

HWY_INLINE int32_t LoadI32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // AVX2, AVX3, AVX3_DL: 256-bit vectors

struct WBlock {
  __m256i q[8];  // quad q: 8 rows x 4 bytes
};

HWY_INLINE WBlock LoadWBlock(Q4_0Format, const uint8_t* qs) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  WBlock w;
  for (size_t c = 0; c < 4; ++c) {
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
    w.q[c] = _mm256_and_si256(v, low);
    w.q[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  }
  return w;
}

HWY_INLINE WBlock LoadWBlock(Q8_0Format, const uint8_t* qs) {
  WBlock w;
  for (size_t c = 0; c < 8; ++c) {
    w.q[c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
#if HWY_TARGET != HWY_AVX3_DL
    w.q[c] = _mm256_xor_si256(w.q[c], _mm256_set1_epi8(static_cast<char>(0x80)));  // signed w
#endif
  }
  return w;
}

HWY_INLINE __m256i Quad(const int8_t* a, size_t q) { return _mm256_set1_epi32(LoadI32(a + 4 * q)); }

#if HWY_TARGET == HWY_AVX3_DL
using vnni::DpBusd;  // acc += four u8 x s8 products per int32 lane (vnni-inl.h)

// Four chains of two quads, then a tree of adds: one chain of eight dependent vpdpbusd
// fills the scheduler and stalls the loads behind it (decode from memory was 30% slower).
template <class Format>
HWY_INLINE __m256i RowSums(Format, const WBlock& w, const int8_t* a, int32_t a_sum) {
  __m256i acc[4];
  for (size_t c = 0; c < 4; ++c) {
    acc[c] = DpBusd(c == 0 ? _mm256_set1_epi32(-Format::kOffset * a_sum) : _mm256_setzero_si256(), w.q[c], Quad(a, c));
  }
  for (size_t c = 0; c < 4; ++c) acc[c] = DpBusd(acc[c], w.q[c + 4], Quad(a, c + 4));
  return _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
}

// Two groups at once in 512-bit vectors (lanes 0-7 group g, 8-15 group g + 1), for the
// multi-token tiles: half the instructions per product of the 256-bit form (Zen 4 runs a
// 512-bit operation as two 256-bit halves, so this relieves the front end, not the units).
struct WBlock2 {
  __m512i q[8];
};

HWY_INLINE __m512i LoadPair(const uint8_t* g0, const uint8_t* g1) {
  const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(g0));
  const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(g1));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

HWY_INLINE WBlock2 LoadWBlock2(Q4_0Format, const uint8_t* qs0, const uint8_t* qs1) {
  const __m512i low = _mm512_set1_epi8(0x0F);
  WBlock2 w;
  for (size_t c = 0; c < 4; ++c) {
    const __m512i v = LoadPair(qs0 + 32 * c, qs1 + 32 * c);
    w.q[c] = _mm512_and_si512(v, low);
    w.q[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
  return w;
}

HWY_INLINE WBlock2 LoadWBlock2(Q8_0Format, const uint8_t* qs0, const uint8_t* qs1) {
  WBlock2 w;
  for (size_t c = 0; c < 8; ++c) w.q[c] = LoadPair(qs0 + 32 * c, qs1 + 32 * c);
  return w;
}

template <class Format>
HWY_INLINE __m512i RowSums2(Format, const WBlock2& w, const int8_t* a, int32_t a_sum) {
  __m512i acc[2];
  acc[0] = _mm512_set1_epi32(-Format::kOffset * a_sum);
  acc[1] = _mm512_setzero_si512();
  for (size_t q = 0; q < 8; ++q) acc[q % 2] = DpBusd(acc[q % 2], w.q[q], _mm512_set1_epi32(LoadI32(a + 4 * q)));
  return _mm512_add_epi32(acc[0], acc[1]);
}

#else

HWY_INLINE __m256i RowSums(Q4_0Format, const WBlock& w, const int8_t* a, int32_t a_sum) {
  __m256i pairs = _mm256_maddubs_epi16(w.q[0], Quad(a, 0));
  for (size_t q = 1; q < 8; ++q) pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w.q[q], Quad(a, q)));
  const __m256i sums = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  return _mm256_sub_epi32(sums, _mm256_set1_epi32(Q4_0Format::kOffset * a_sum));
}

HWY_INLINE __m256i RowSums(Q8_0Format, const WBlock& w, const int8_t* a, int32_t /*a_sum*/) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t q = 0; q < 8; ++q) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w.q[q], w.q[q]), _mm256_sign_epi8(Quad(a, q), w.q[q]));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  return acc;
}

#endif

#else  // portable: the same integers in scalar code

struct WBlock {
  uint8_t u[8][8][4];  // [quad][row][k]: w + offset
};

HWY_INLINE WBlock LoadWBlock(Q4_0Format, const uint8_t* qs) {
  WBlock w;
  for (size_t c = 0; c < 4; ++c) {
    for (size_t i = 0; i < 8; ++i) {
      for (size_t k = 0; k < 4; ++k) {
        const uint8_t byte = qs[32 * c + 4 * i + k];
        w.u[c][i][k] = byte & 0xF;
        w.u[c + 4][i][k] = byte >> 4;
      }
    }
  }
  return w;
}

HWY_INLINE WBlock LoadWBlock(Q8_0Format, const uint8_t* qs) {
  WBlock w;
  std::memcpy(w.u, qs, sizeof(w.u));
  return w;
}

template <class Format>
HWY_INLINE void RowSums(Format, const WBlock& w, const int8_t* a, int32_t a_sum, int32_t (&sums)[8]) {
  for (size_t i = 0; i < 8; ++i) {
    int32_t s = -Format::kOffset * a_sum;
    for (size_t q = 0; q < 8; ++q) {
      for (size_t k = 0; k < 4; ++k) s += int32_t{w.u[q][i][k]} * int32_t{a[4 * q + k]};
    }
    sums[i] = s;
  }
}

#endif

}  // namespace packed
}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
