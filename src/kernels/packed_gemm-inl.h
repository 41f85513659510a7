// The integer matrix products of packed quantized weights (format/packed_quant.h) with
// quantized activations, for every quantized type, on x86 targets from AVX2 up (Highway
// "-inl" header: compiled once per target inside simd_quant.cpp's per-target namespace).
// One template per kind serves every type: PackedGemm<IntFormat F> (F: the type's
// constants, format/types/types.h).
//
// Per group of 8 rows (V256) or two groups (V512, multi-token tiles on AVX-512 VNNI), per
// unit of 32 values:
//   1. the unit's 8 quads of codes are unpacked once into 8 vectors of u8 (one 32-bit lane
//      per row, 4 values each): the planes' fields shifted and masked into place; the
//      non-linear types then look their levels up with one byte shuffle;
//   2. for each token of the tile, exact int32 sums per row: vpdpbusd on the unsigned codes
//      (AVX-512 VNNI), or maddubs + madd (AVX2: int16 pairs added while they cannot
//      overflow, then madd with ones or with the sub-block scales); types with signed
//      values on AVX2 (Q8_0, IQ4) use |w| and the activation with w's sign;
//   3. Q8_0 kinds: per unit, float(sum) * (d_w * d_a) added to one float per row and token
//      (and float(a_sum) * (m_w * d_a) for Q4_1 / Q5_1); Q8_K kinds: the sums times each
//      sub-block's integer scale are added in int32 over the super-block, the offset
//      (Q3_K, Q6_K, IQ4 codes stored +128 on VNNI) and the mins removed with the
//      activations' sub-block sums by int16 madd, then once per super-block
//      float(P) * (d_w * d_a) (and - float(M) * (dmin_w * d_a)).
// The order is int_dot.h's, lane for lane (one lane per row, no fused multiply-add), and
// the integers are exact on every path: results are bit-identical to dot_reference.
// Tiles: a unit is unpacked once for TT tokens (prefill, a batch of decoding sequences), the
// tokens' activations read from their tile of 8 (GemmArgs::tiles) at fixed offsets, the
// last tokens of a chunk in one tile of their count; tokens go in chunks whose activations
// stay in L2 while the groups of the thread's rows stream past; one token (decode) streams
// its groups from memory with software prefetch. Where a pair of groups takes several
// tiles, the second (its weights in L2 since the first) prefetches the next pair, so that
// memory streams while the cores multiply (gemm22/Q8_0/32000x2048: 12.4 -> 8.6 ms).

#if defined(H2O_KERNELS_PACKED_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H2O_KERNELS_PACKED_GEMM_INL_H_
#undef H2O_KERNELS_PACKED_GEMM_INL_H_
#else
#define H2O_KERNELS_PACKED_GEMM_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "format/packed_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/vnni-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace packed {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

constexpr bool kVnni = HWY_TARGET == HWY_AVX3_DL;
using Layout = PackedLayout;

HWY_INLINE int32_t LoadI32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// ------------------------------------------------------------------ vectors of 1 or 2 groups

// One group: 8 rows in a 256-bit vector.
struct V256 {
  using I = __m256i;
  using F = __m256;
  static constexpr size_t kGroups = 1;
  static I Load(const uint8_t* p, size_t /*stride*/) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static I And(I a, I b) { return _mm256_and_si256(a, b); }
  static I Or(I a, I b) { return _mm256_or_si256(a, b); }
  static I Xor(I a, I b) { return _mm256_xor_si256(a, b); }
  static I Set8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static I Set32(int32_t v) { return _mm256_set1_epi32(v); }
  static I Zero() { return _mm256_setzero_si256(); }
  template <int S>
  static I Shift16(I v) {  // left by S (S > 0) or right by -S
    if constexpr (S > 0) return _mm256_slli_epi16(v, S);
    if constexpr (S < 0) return _mm256_srli_epi16(v, -S);
    return v;
  }
  static I Shuffle8(I table, I idx) { return _mm256_shuffle_epi8(table, idx); }
  static I Table(const int8_t* t16) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  static I Add16(I a, I b) { return _mm256_add_epi16(a, b); }
  static I Add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static I Sub32(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I Mullo32(I a, I b) { return _mm256_mullo_epi32(a, b); }
  static I Madd16(I a, I b) { return _mm256_madd_epi16(a, b); }
  static I MaddUbs(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static I Abs8(I v) { return _mm256_abs_epi8(v); }
  static I SignOf(I a, I w) { return _mm256_sign_epi8(a, w); }
#if HWY_TARGET == HWY_AVX3_DL
  static I DpBusd(I acc, I u, I s) { return vnni::DpBusd(acc, u, s); }
#endif
  // 16 bytes per group (a pair of sub-blocks' scales for 8 rows) widened to int16.
  static I I8To16(const uint8_t* p, size_t /*stride*/) {
    return _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I U8To16(const uint8_t* p, size_t /*stride*/) {
    return _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // int16 pairs (x0, x1) per lane -> int32 x0 (Even) or x1 (Odd), sign-extended; or the
  // pair (x0, x0) / (x1, x1).
  static I Even32(I v) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 16); }
  static I Odd32(I v) { return _mm256_srai_epi32(v, 16); }
  static I EvenPair(I v) { return _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, 0xA0), 0xA0); }
  static I OddPair(I v) { return _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, 0xF5), 0xF5); }
  // The 8 rows' fp16 scales at p (16 bytes per group).
  static F Fp16(const uint8_t* p, size_t /*stride*/) {
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F Cvt(I v) { return _mm256_cvtepi32_ps(v); }
  static F SetF(float v) { return _mm256_set1_ps(v); }
  static F ZeroF() { return _mm256_setzero_ps(); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F AddF(F a, F b) { return _mm256_add_ps(a, b); }
  static F SubF(F a, F b) { return _mm256_sub_ps(a, b); }
  static void Store(float* out, F v) { _mm256_storeu_ps(out, v); }
  static void StoreAligned(float* out, F v) { _mm256_store_ps(out, v); }
};

#if HWY_TARGET == HWY_AVX3_DL
// Two groups (g, g + 1 at `stride` bytes): lanes 0-7 group g, 8-15 group g + 1, in 512-bit
// vectors, the same operations lane for lane: half the instructions per product (Zen 4
// runs a 512-bit operation as two 256-bit halves, so this relieves the front end).
struct V512 {
  using I = __m512i;
  using F = __m512;
  static constexpr size_t kGroups = 2;
  static I Load(const uint8_t* p, size_t stride) {
    const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + stride));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
  static I And(I a, I b) { return _mm512_and_si512(a, b); }
  static I Or(I a, I b) { return _mm512_or_si512(a, b); }
  static I Xor(I a, I b) { return _mm512_xor_si512(a, b); }
  static I Set8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static I Set32(int32_t v) { return _mm512_set1_epi32(v); }
  static I Zero() { return _mm512_setzero_si512(); }
  template <int S>
  static I Shift16(I v) {
    if constexpr (S > 0) return _mm512_slli_epi16(v, S);
    if constexpr (S < 0) return _mm512_srli_epi16(v, -S);
    return v;
  }
  static I Shuffle8(I table, I idx) { return _mm512_shuffle_epi8(table, idx); }
  static I Table(const int8_t* t16) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  static I Add16(I a, I b) { return _mm512_add_epi16(a, b); }
  static I Add32(I a, I b) { return _mm512_add_epi32(a, b); }
  static I Sub32(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I Mullo32(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I Madd16(I a, I b) { return _mm512_madd_epi16(a, b); }
  static I DpBusd(I acc, I u, I s) { return vnni::DpBusd(acc, u, s); }
  static I I8To16(const uint8_t* p, size_t stride) { return _mm512_cvtepi8_epi16(Load16x2(p, stride)); }
  static I U8To16(const uint8_t* p, size_t stride) { return _mm512_cvtepu8_epi16(Load16x2(p, stride)); }
  static I Even32(I v) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 16), 16); }
  static I Odd32(I v) { return _mm512_srai_epi32(v, 16); }
  static F Fp16(const uint8_t* p, size_t stride) { return _mm512_cvtph_ps(Load16x2(p, stride)); }
  static F Cvt(I v) { return _mm512_cvtepi32_ps(v); }
  static F SetF(float v) { return _mm512_set1_ps(v); }
  static F ZeroF() { return _mm512_setzero_ps(); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F AddF(F a, F b) { return _mm512_add_ps(a, b); }
  static F SubF(F a, F b) { return _mm512_sub_ps(a, b); }
  static void Store(float* out, F v) { _mm512_storeu_ps(out, v); }
  static void StoreAligned(float* out, F v) { _mm512_store_ps(out, v); }

 private:
  static __m256i Load16x2(const uint8_t* p, size_t stride) {
    const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(p + stride));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
  }
};
#endif

// ------------------------------------------------------------------ per-format constants

template <IntFormat F>
struct Traits {
  static constexpr bool kQ8K = F.act == ActKind::Q8_K;
  static constexpr int kCodeMax = F.bits == 8 ? 255 : (1 << F.bits) - 1;
  // Signed values on AVX2 (maddubs cannot take codes up to 255: its int16 pairs would
  // saturate): Q8_0 and the IQ4 levels use |w| and the activations with w's sign.
  static constexpr bool kSigned = !kVnni && (F.bits == 8 || F.nonlinear);
  // The offset removed from the codes' sums (VNNI stores IQ4 levels + 128).
  static constexpr int32_t kOffset = kSigned ? 0 : F.nonlinear ? 128 : F.offset;
  // Quads per scale (a sub-block of 16 or 32 values, or a Q8_0 block).
  static constexpr size_t kQuadsPerScale = kQ8K ? static_cast<size_t>(F.sub) / 4 : 8;
  // AVX2: quads whose maddubs int16 pairs (each at most 2 * max|w| * 127) may be added in
  // int16.
  static constexpr size_t kInt16Quads = [] {
    const int pair = 2 * (kSigned ? 127 : kCodeMax) * 127;
    size_t n = 1;
    while (n * 2 <= kQuadsPerScale && static_cast<int>(n * 2) * pair <= 32767) n *= 2;
    return n;
  }();
  // Decode: how far ahead (bytes) one-token products prefetch the weights they stream
  // (Q4_0 measured on Zen 4: 23 -> 40 tokens/s; Q8_0 as fast or faster without).
  static constexpr size_t kPrefetch = F.bits == 8 ? 0 : 2048;
};

// ------------------------------------------------------------------ unpacking a unit

template <int Shift, class V>
HWY_INLINE typename V::I Field(typename V::I v, int mask) {
  return V::And(V::template Shift16<Shift>(v), V::Set8(mask));
}

// A unit's 8 quads of 8 (V256) or 16 (V512) rows: codes as unsigned bytes, or (Traits::
// kSigned) signed values.
template <IntFormat F, class V>
HWY_INLINE void LoadUnit(const uint8_t* unit, size_t stride, typename V::I (&q)[8]) {
  using I = typename V::I;
  if constexpr (F.bits == 8) {
    for (size_t c = 0; c < 8; ++c) q[c] = V::Load(unit + 32 * c, stride);
  } else if constexpr (F.bits >= 4) {
    for (size_t c = 0; c < 4; ++c) {
      const I v = V::Load(unit + 32 * c, stride);
      q[c] = V::And(v, V::Set8(0x0F));
      q[c + 4] = Field<-4, V>(v, 0x0F);
    }
  } else {
    for (size_t h = 0; h < 2; ++h) {
      const I v = V::Load(unit + 32 * h, stride);
      q[4 * h] = V::And(v, V::Set8(3));
      q[4 * h + 1] = Field<-2, V>(v, 3);
      q[4 * h + 2] = Field<-4, V>(v, 3);
      q[4 * h + 3] = Field<-6, V>(v, 3);
    }
  }
  constexpr size_t kHigh = Layout::high_plane_at(F);
  if constexpr (F.bits == 5 || F.bits == 3) {
    // Bit q of the lane's byte k -> bit `pos` of quad q's byte k.
    constexpr int pos = Layout::high_shift(F);
    const I h = V::Load(unit + kHigh, stride);
    [&]<size_t... Q>(std::index_sequence<Q...>) {
      ((q[Q] = V::Or(q[Q], Field<pos - static_cast<int>(Q), V>(h, 1 << pos))), ...);
    }(std::make_index_sequence<8>());
  }
  if constexpr (F.bits == 6) {
    // Bits 2p..2p+1 of chunk hh's byte k -> bits 4-5 of quad 4hh + p's byte k.
    for (size_t hh = 0; hh < 2; ++hh) {
      const I h = V::Load(unit + kHigh + 32 * hh, stride);
      q[4 * hh] = V::Or(q[4 * hh], Field<4, V>(h, 0x30));
      q[4 * hh + 1] = V::Or(q[4 * hh + 1], Field<2, V>(h, 0x30));
      q[4 * hh + 2] = V::Or(q[4 * hh + 2], V::And(h, V::Set8(0x30)));
      q[4 * hh + 3] = V::Or(q[4 * hh + 3], Field<-2, V>(h, 0x30));
    }
  }
  if constexpr (F.nonlinear) {
    // The levels, looked up by index: signed (AVX2) or + 128 (VNNI, unsigned bytes).
    alignas(16) static constexpr int8_t kSignedLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                            1,    13,   25,  38,  53,  69,  89,  113};
    alignas(16) static constexpr int8_t kBiasedLevels[16] = {1,   24,   45,  63,  79,  93,  106, 118,
                                                            -127, -115, -103, -90, -75, -59, -39, -15};
    const I table = V::Table(Traits<F>::kSigned ? kSignedLevels : kBiasedLevels);
    for (size_t c = 0; c < 8; ++c) q[c] = V::Shuffle8(table, q[c]);
  } else if constexpr (Traits<F>::kSigned) {
    for (size_t c = 0; c < 8; ++c) q[c] = V::Xor(q[c], V::Set8(0x80));  // Q8_0: code - 128
  }
}

// ------------------------------------------------------------------ integer sums

// The 4 activations of quad q broadcast to every lane.
template <class V>
HWY_INLINE typename V::I Quad(const int8_t* a, size_t q) {
  return V::Set32(LoadI32(a + 4 * q));
}

// Sum over quads [Q0, Q0 + N) of w * a per row lane, as int16 pairs (AVX2; N <=
// kInt16Quads), the signed types with |w| and a with w's sign.
template <IntFormat F, class V, size_t Q0, size_t N>
HWY_INLINE typename V::I Pairs16(const typename V::I (&q)[8], const typename V::I (&mag)[8], const int8_t* a) {
  using I = typename V::I;
  I pairs{};
  for (size_t k = 0; k < N; ++k) {
    const size_t c = Q0 + k;
    I p;
    if constexpr (Traits<F>::kSigned) {
      p = V::MaddUbs(mag[c], V::SignOf(Quad<V>(a, c), q[c]));
    } else {
      p = V::MaddUbs(q[c], Quad<V>(a, c));
    }
    pairs = k == 0 ? p : V::Add16(pairs, p);
  }
  return pairs;
}

// Q8_0 kinds: sum_k (w_k) * a_k per row for one unit (exact int32).
template <IntFormat F, class V>
HWY_INLINE typename V::I UnitSums(const typename V::I (&q)[8], const typename V::I (&mag)[8], const int8_t* a,
                                  int32_t a_sum) {
  using I = typename V::I;
  constexpr int32_t off = Traits<F>::kOffset;
#if HWY_TARGET == HWY_AVX3_DL
  (void)mag;
  // Four chains of two quads, then a tree of adds: one chain of eight dependent vpdpbusd
  // fills the scheduler and stalls the loads behind it (decode from memory was 30% slower).
  I acc[4];
  for (size_t c = 0; c < 4; ++c) acc[c] = V::DpBusd(c == 0 && off != 0 ? V::Set32(-off * a_sum) : V::Zero(), q[c], Quad<V>(a, c));
  for (size_t c = 0; c < 4; ++c) acc[c] = V::DpBusd(acc[c], q[c + 4], Quad<V>(a, c + 4));
  return V::Add32(V::Add32(acc[0], acc[1]), V::Add32(acc[2], acc[3]));
#else
  constexpr size_t kN = Traits<F>::kInt16Quads;
  const I ones = _mm256_set1_epi16(1);
  I sum = V::Madd16(Pairs16<F, V, 0, kN>(q, mag, a), ones);
  if constexpr (kN < 8) {
    [&]<size_t... G>(std::index_sequence<G...>) {
      ((sum = V::Add32(sum, V::Madd16(Pairs16<F, V, (G + 1) * kN, kN>(q, mag, a), ones))), ...);
    }(std::make_index_sequence<8 / kN - 1>());
  }
  if constexpr (off != 0) sum = V::Sub32(sum, V::Set32(off * a_sum));
  return sum;
#endif
}

// Q8_K kinds: a unit's contribution sum_j s_j * sum_{k in j} w_k * a_k per row (exact
// int32, offsets not removed), with the unit's scale vectors `sc` (VNNI: s_j as int32 per
// row; AVX2: (s_j, s_j) int16 pairs), one per sub-block in the unit (1 or 2).
template <IntFormat F, class V>
HWY_INLINE typename V::I UnitScaledSums(const typename V::I (&q)[8], const typename V::I (&mag)[8],
                                        const typename V::I (&sc)[2], const int8_t* a) {
  using I = typename V::I;
  constexpr size_t kPerScale = Traits<F>::kQuadsPerScale;
#if HWY_TARGET == HWY_AVX3_DL
  (void)mag;
  if constexpr (kPerScale == 8) {
    I s0 = V::DpBusd(V::Zero(), q[0], Quad<V>(a, 0)), s1 = V::DpBusd(V::Zero(), q[1], Quad<V>(a, 1));
    for (size_t c = 2; c < 8; c += 2) {
      s0 = V::DpBusd(s0, q[c], Quad<V>(a, c));
      s1 = V::DpBusd(s1, q[c + 1], Quad<V>(a, c + 1));
    }
    return V::Mullo32(V::Add32(s0, s1), sc[0]);
  } else {
    I s0 = V::DpBusd(V::Zero(), q[0], Quad<V>(a, 0)), s1 = V::DpBusd(V::Zero(), q[4], Quad<V>(a, 4));
    for (size_t c = 1; c < 4; ++c) {
      s0 = V::DpBusd(s0, q[c], Quad<V>(a, c));
      s1 = V::DpBusd(s1, q[c + 4], Quad<V>(a, c + 4));
    }
    return V::Add32(V::Mullo32(s0, sc[0]), V::Mullo32(s1, sc[1]));
  }
#else
  constexpr size_t kN = Traits<F>::kInt16Quads;
  I sum = V::Madd16(Pairs16<F, V, 0, kN>(q, mag, a), sc[0]);
  [&]<size_t... G>(std::index_sequence<G...>) {
    ((sum = V::Add32(sum, V::Madd16(Pairs16<F, V, (G + 1) * kN, kN>(q, mag, a), sc[(G + 1) * kN / kPerScale]))), ...);
  }(std::make_index_sequence<8 / kN - 1>());
  return sum;
#endif
}

// ------------------------------------------------------------------ tiles

template <class V>
HWY_INLINE void StoreRows(const GemmArgs& a, size_t g, size_t tok, size_t valid, typename V::F v) {
  float* out = a.out + tok * a.out_stride + g * Layout::kRows;
  if (valid == Layout::kRows * V::kGroups) {
    V::Store(out, v);
  } else {
    alignas(64) float rows[Layout::kRows * V::kGroups];
    V::StoreAligned(rows, v);
    std::memcpy(out, rows, valid * sizeof(float));
  }
}

// The cache lines of [p, p + bytes) fetched toward L1 (kHint _MM_HINT_T0) or L2 (_MM_HINT_T1).
template <auto kHint = _MM_HINT_T0>
HWY_INLINE void Prefetch(const uint8_t* p, size_t bytes) {
  for (size_t l = 0; l < bytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p + l), kHint);
}

// Q8_0 kinds: group(s) g (rows 8g.., `valid` of them) against tokens t0 .. t0 + TT.
template <IntFormat F, class V, size_t TT>
HWY_INLINE void Tile32(const GemmArgs& a, size_t g, size_t t0, size_t valid, const uint8_t* next = nullptr) {
  using I = typename V::I;
  using VF = typename V::F;
  constexpr size_t kBlock = Layout::block_bytes(F);
  const size_t nb = a.cols / 32;
  const uint8_t* group = a.w + g * a.group_bytes;
  const size_t stride = a.group_bytes;
  // The tokens' tile (kernel_table.h, GemmArgs::tiles): every token at a fixed offset from
  // one pointer per block, so the TT tokens take no address registers of their own.
  const auto [first, w] = act_tile_place(a.n_tokens, nb, t0);
  const int8_t* xqs = a.tiles.qs + first * 32;
  const float* xd = a.tiles.d + first;
  const int32_t* xsum = a.tiles.sum + first;
  VF acc[TT];
  for (auto& v : acc) v = V::ZeroF();
  for (size_t b = 0; b < nb; ++b, xqs += w * 32, xd += w, xsum += w) {
    const uint8_t* blk = group + b / 4 * kBlock;
    const size_t u = b % 4;
    if constexpr (TT == 1 && Traits<F>::kPrefetch > 0) {
      if (u == 0) Prefetch(blk + Traits<F>::kPrefetch, kBlock);
    }
    if (next != nullptr && u == 0) {
      for (size_t k = 0; k < V::kGroups; ++k) Prefetch<_MM_HINT_T1>(next + k * stride + b / 4 * kBlock, kBlock);
    }
    I q[8], mag[8];
    LoadUnit<F, V>(blk + Layout::unit_at(F, u), stride, q);
    if constexpr (Traits<F>::kSigned) {
      for (size_t c = 0; c < 8; ++c) mag[c] = V::Abs8(q[c]);
    }
    const VF dw = V::Fp16(blk + Layout::d32_at(F, u), stride);
    VF mw{};
    if constexpr (F.has_min) mw = V::Fp16(blk + Layout::m32_at(F, u), stride);
    for (size_t t = 0; t < TT; ++t) {
      const I sums = UnitSums<F, V>(q, mag, xqs + 32 * t, xsum[t]);
      const VF da = V::SetF(xd[t]);
      acc[t] = V::AddF(acc[t], V::Mul(V::Cvt(sums), V::Mul(dw, da)));
      if constexpr (F.has_min) {
        acc[t] = V::AddF(acc[t], V::Mul(V::SetF(static_cast<float>(xsum[t])), V::Mul(mw, da)));
      }
    }
  }
  for (size_t t = 0; t < TT; ++t) StoreRows<V>(a, g, t0 + t, valid, acc[t]);
}

// Q8_K kinds: the unit's scale vectors (see UnitScaledSums) from the block's scale pairs.
template <IntFormat F, class V>
HWY_INLINE void UnitScales(const uint8_t* blk, size_t stride, size_t u, typename V::I (&sc)[2]) {
  if constexpr (F.sub == 32) {  // sub-block u: pair u / 2, element u % 2
    const typename V::I pair = V::I8To16(blk + Layout::scales_at(F, u / 2), stride);
#if HWY_TARGET == HWY_AVX3_DL
    sc[0] = u % 2 == 0 ? V::Even32(pair) : V::Odd32(pair);
#else
    sc[0] = u % 2 == 0 ? V::EvenPair(pair) : V::OddPair(pair);
#endif
  } else {  // sub-blocks 2u and 2u + 1: pair u
    const typename V::I pair = V::I8To16(blk + Layout::scales_at(F, u), stride);
#if HWY_TARGET == HWY_AVX3_DL
    sc[0] = V::Even32(pair);
    sc[1] = V::Odd32(pair);
#else
    sc[0] = V::EvenPair(pair);
    sc[1] = V::OddPair(pair);
#endif
  }
}

// Q8_K kinds: sum_j c_j * (activation sum of sub-block j) per row, c the scales (offset
// types) or the mins, from their pairs in the block: one int16 madd per pair.
template <IntFormat F, class V, bool kMins>
HWY_INLINE typename V::I SubBlockDot(const uint8_t* blk, size_t stride, const int16_t* asum) {
  using I = typename V::I;
  constexpr size_t kPairs = static_cast<size_t>(F.n_sub()) / 2;
  I acc = V::Zero();
  for (size_t p = 0; p < kPairs; ++p) {
    const I c = kMins ? V::U8To16(blk + Layout::mins_at(F, p), stride) : V::I8To16(blk + Layout::scales_at(F, p), stride);
    acc = V::Add32(acc, V::Madd16(c, V::Set32(LoadI32(asum + 2 * p))));
  }
  return acc;
}

template <IntFormat F, class V, size_t TT>
HWY_INLINE void Tile256(const GemmArgs& a, size_t g, size_t t0, size_t valid, const uint8_t* next = nullptr) {
  using I = typename V::I;
  using VF = typename V::F;
  constexpr size_t kBlock = Layout::block_bytes(F);
  constexpr int32_t off = Traits<F>::kOffset;
  const size_t nsb = a.cols / 256;
  const uint8_t* group = a.w + g * a.group_bytes;
  const size_t stride = a.group_bytes;
  // The tokens' tile, as in Tile32.
  const auto [first, w] = act_tile_place(a.n_tokens, nsb, t0);
  constexpr size_t kSums = F.sub == 16 ? 16 : 8;  // activation sums per super-block
  const int8_t* xqs = a.tiles.qs + first * 256;
  const float* xd = a.tiles.d + first;
  const int16_t* xsum = (F.sub == 16 ? a.tiles.sum16 : a.tiles.sum32) + first * kSums;
  VF acc[TT];
  for (auto& v : acc) v = V::ZeroF();
  for (size_t i = 0; i < nsb; ++i, xqs += w * 256, xd += w, xsum += w * kSums) {
    const uint8_t* blk = group + i * kBlock;
    if constexpr (TT == 1 && Traits<F>::kPrefetch > 0) Prefetch(blk + Traits<F>::kPrefetch, kBlock);
    if (next != nullptr) {
      for (size_t k = 0; k < V::kGroups; ++k) Prefetch<_MM_HINT_T1>(next + k * stride + i * kBlock, kBlock);
    }
    I P[TT];
    for (auto& v : P) v = V::Zero();
    for (size_t u = 0; u < 8; ++u) {
      I q[8], mag[8], sc[2];
      LoadUnit<F, V>(blk + Layout::unit_at(F, u), stride, q);
      if constexpr (Traits<F>::kSigned) {
        for (size_t c = 0; c < 8; ++c) mag[c] = V::Abs8(q[c]);
      }
      UnitScales<F, V>(blk, stride, u, sc);
      for (size_t t = 0; t < TT; ++t) {
        P[t] = V::Add32(P[t], UnitScaledSums<F, V>(q, mag, sc, xqs + 256 * t + 32 * u));
      }
    }
    const VF dw = V::Fp16(blk + Layout::d_at(F), stride);
    VF dmw{};
    if constexpr (F.has_min) dmw = V::Fp16(blk + Layout::dmin_at(F), stride);
    for (size_t t = 0; t < TT; ++t) {
      const int16_t* asum = xsum + kSums * t;
      if constexpr (off != 0)
        P[t] = V::Sub32(P[t], V::Mullo32(V::Set32(off), SubBlockDot<F, V, false>(blk, stride, asum)));
      const VF da = V::SetF(xd[t]);
      acc[t] = V::AddF(acc[t], V::Mul(V::Cvt(P[t]), V::Mul(dw, da)));
      if constexpr (F.has_min) {
        const I M = SubBlockDot<F, V, true>(blk, stride, asum);
        acc[t] = V::SubF(acc[t], V::Mul(V::Cvt(M), V::Mul(dmw, da)));
      }
    }
  }
  for (size_t t = 0; t < TT; ++t) StoreRows<V>(a, g, t0 + t, valid, acc[t]);
}

template <IntFormat F, class V, size_t TT>
HWY_INLINE void Tile(const GemmArgs& a, size_t g, size_t t0, size_t valid, const uint8_t* next = nullptr) {
  if constexpr (F.act == ActKind::Q8_K) {
    Tile256<F, V, TT>(a, g, t0, valid, next);
  } else {
    Tile32<F, V, TT>(a, g, t0, valid, next);
  }
}

// The last r tokens (1 <= r <= TT) in one tile of exactly r: one more pass over the
// group's weights instead of one per power of two (22 tokens: 8 + 8 + 6, not
// 8 + 8 + 4 + 1 + 1).
template <IntFormat F, class V, size_t TT>
HWY_INLINE void TileRest(const GemmArgs& a, size_t g, size_t t0, size_t r, size_t valid, const uint8_t* next) {
  if constexpr (TT > 1) {
    if (r < TT) return TileRest<F, V, TT - 1>(a, g, t0, r, valid, next);
  }
  Tile<F, V, TT>(a, g, t0, valid, next);
}

// Tokens per tile: TT accumulators and a unit's 8 weight vectors fit the register file (16
// vector registers on AVX2, 32 with AVX-512).
constexpr size_t kTokTile = HWY_TARGET <= HWY_AVX3 ? 8 : 4;
// Tokens per chunk: their activations stay in L2 while every group of the thread's rows
// passes over them.
constexpr size_t kTokChunk = 64;
// A tile of tokens lies inside one tile of the activations (GemmArgs::tiles).
static_assert(kTokChunk % kActTile == 0 && kActTile % kTokTile == 0 && kActTile == 8);
// Pairs of groups (V512) only for several tokens: one token streams its weights from
// memory, and two streams (groups g and g + 1) read memory slower than one (measured).
constexpr size_t kPairMinTokens = 4;

// Rows [row_begin, row_end): whole groups (row_begin is a multiple of 8), the last one
// possibly partial at the end of the matrix.
template <IntFormat F>
void PackedGemm(const GemmArgs& a, size_t row_begin, size_t row_end) {
  constexpr size_t kRows = Layout::kRows;
  const size_t g_begin = row_begin / kRows, g_end = (row_end + kRows - 1) / kRows;
  for (size_t c0 = 0; c0 < a.n_tokens; c0 += kTokChunk) {
    const size_t c1 = std::min(a.n_tokens, c0 + kTokChunk);
    size_t g = g_begin;
#if HWY_TARGET == HWY_AVX3_DL
    if (c1 - c0 >= kPairMinTokens) {
      for (; g + 2 <= g_end; g += 2) {
        const size_t valid = std::min(2 * kRows, row_end - g * kRows);
        // The second pass over this pair (the tile at c0 + 8, its weights in L2) fetches the
        // next pair from memory.
        const uint8_t* next = g + 4 <= g_end ? a.w + (g + 2) * a.group_bytes : nullptr;
        const auto fetch = [&](size_t t) { return t == c0 + 8 ? next : nullptr; };
        size_t t = c0;
        for (; t + 8 <= c1; t += 8) Tile<F, V512, 8>(a, g, t, valid, fetch(t));
        if (t < c1) TileRest<F, V512, 7>(a, g, t, c1 - t, valid, fetch(t));
      }
    }
#endif
    for (; g < g_end; ++g) {
      const size_t valid = std::min(kRows, row_end - g * kRows);
      size_t t = c0;
      for (; t + kTokTile <= c1; t += kTokTile) Tile<F, V256, kTokTile>(a, g, t, valid);
      if (t < c1) TileRest<F, V256, kTokTile - 1>(a, g, t, c1 - t, valid, nullptr);
    }
  }
}

#endif  // x86 AVX2+

}  // namespace packed
}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
