// Quantized kernels for every compiled Highway target: activations to Q8_0 blocks, and the
// matrix products of packed Q8_0 / Q4_0 weights (format/packed_quant.h) with them in
// integer arithmetic (llama.cpp's vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0 idea, on the row
// groups its x86 repacking also uses; written afresh).
//
// Per output row and token: for each block b in order, the exact int32 sum of the block's
// 32 products (packed_dot-inl.h), converted to float, times (d_w * d_a), is added to one
// float accumulator (multiply and add not fused). A vector holds the 8 rows of a group,
// so that order is also the scalar one: results are bit-identical on every target and to
// dot_q*_q8_blocks (reference.h).
//
// Tiles: a group's block is loaded (and Q4_0 unpacked) once and used for TT tokens (the
// prefill GEMM); tokens go in chunks whose activations stay in L2 while the groups of the
// thread's rows stream past.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_quant.cpp"
// clang-format off
#include "kernels/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <cstring>

#include "format/tensor_type.h"
#include "kernels/kernel_table.h"
#include "kernels/packed_dot-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------- activations

// quantize_row(Q8_0), vectorised: d = max|x| / 127 (stored as fp16), q = x / d rounded
// half away from zero (std::lround), which Round (half to even) gets wrong only on ties.
// sum[b]: the block's values added up (exact: whole numbers below 2^24 in float).
void QuantizeQ8(const float* x, size_t n, int8_t* qs, float* dq, int32_t* sum) {
  using DF = hn::CappedTag<float, 8>;  // 256 bits at most: the widest int32 -> int8 demotion
  using VF = hn::Vec<DF>;
  constexpr size_t kN = hn::MaxLanes(DF());
  constexpr size_t kB = 32 / kN;  // vectors per block
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  for (size_t b = 0; b < n / 32; ++b) {
    VF v[kB];
    for (size_t k = 0; k < kB; ++k) v[k] = hn::LoadU(df, x + b * 32 + k * kN);
    VF m = hn::Abs(v[0]);
    for (size_t k = 1; k < kB; ++k) m = hn::Max(m, hn::Abs(v[k]));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, m));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dq[b] = fp16_to_fp32(fp32_to_fp16(d));
    const VF vid = hn::Set(df, id), half = hn::Set(df, 0.5f), one = hn::Set(df, 1.0f);
    VF total = hn::Zero(df);
    for (size_t k = 0; k < kB; ++k) {
      const VF s = hn::Mul(v[k], vid);
      const VF t = hn::Trunc(s);
      const auto tie = hn::Eq(hn::Abs(hn::Sub(s, t)), half);
      const VF r = hn::IfThenElse(tie, hn::Add(t, hn::CopySign(one, s)), hn::Round(s));
      total = hn::Add(total, r);
      hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, r)), d8, qs + b * 32 + k * kN);
    }
    sum[b] = static_cast<int32_t>(hn::GetLane(hn::SumOfLanes(df, total)));
  }
}

// ---------------------------------------------------------------- matrix products

using packed::LoadWBlock;
using packed::RowSums;
using packed::WBlock;
constexpr size_t kGroupRows = 8;

// Offsets in a group (PackedQuantShape::qs_at, scales_at, with constants).
constexpr size_t kSuper = 4;
template <class Format>
HWY_INLINE size_t QsAt(size_t b) {
  return b / kSuper * (kSuper * (Format::kQs + 16)) + b % kSuper * Format::kQs;
}
template <class Format>
HWY_INLINE size_t ScalesAt(size_t b) {
  return b / kSuper * (kSuper * (Format::kQs + 16)) + kSuper * Format::kQs + b % kSuper * 16;
}

// Writes a tile's 8 row results of token t, or the first `valid` of them.
HWY_INLINE void StoreRows(const GemmArgs& a, size_t g, size_t tok, size_t valid, const float* rows8) {
  float* out = a.out + tok * a.out_stride + g * kGroupRows;
  std::memcpy(out, rows8, valid * sizeof(float));
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // as in packed_dot-inl.h

// Tile: TT accumulators of 8 rows plus a block's 8 weight vectors fit the register file
// (16 vector registers on AVX2, 32 with AVX-512).
constexpr size_t kTokTile = HWY_TARGET <= HWY_AVX3 ? 8 : 4;

template <class Format, size_t TT>
HWY_INLINE void PackedTile(const GemmArgs& a, size_t g, size_t t0, size_t valid) {
  const size_t nb = a.cols / 32;
  const uint8_t* group = a.w + g * a.group_bytes;
  __m256 acc[TT];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    if constexpr (TT == 1 && Format::kPrefetch > 0) {
      // Decode streams the weights from memory once; see kPrefetch.
      if (b % kSuper == 0) {
        const uint8_t* ahead = group + QsAt<Format>(b) + Format::kPrefetch;
        for (size_t l = 0; l < kSuper * (Format::kQs + 16); l += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(ahead + l), _MM_HINT_T0);
        }
      }
    }
    const WBlock w = LoadWBlock(Format(), group + QsAt<Format>(b));
    const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(group + ScalesAt<Format>(b))));
    for (size_t t = 0; t < TT; ++t) {
      const size_t tb = (t0 + t) * nb + b;
      const __m256i sums = RowSums(Format(), w, a.xq.qs + (t0 + t) * a.cols + 32 * b, a.xq.sum[tb]);
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(a.xq.d[tb]));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(sums), scale));
    }
  }
  for (size_t t = 0; t < TT; ++t) {
    if (valid == kGroupRows) {
      _mm256_storeu_ps(a.out + (t0 + t) * a.out_stride + g * kGroupRows, acc[t]);
    } else {
      alignas(32) float rows8[kGroupRows];
      _mm256_store_ps(rows8, acc[t]);
      StoreRows(a, g, t0 + t, valid, rows8);
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// Pairs of groups only for several tokens: one token streams its weights from memory, and
// two streams (groups g and g + 1) read memory slower than one (measured).
constexpr size_t kPairMinTokens = 4;
// Groups g and g + 1 (16 rows, `valid` of them in the matrix) against tokens t0 .. t0+TT,
// in 512-bit vectors; the same operations lane for lane as PackedTile.
template <class Format, size_t TT>
HWY_INLINE void PackedTile2(const GemmArgs& a, size_t g, size_t t0, size_t valid) {
  const size_t nb = a.cols / 32;
  const uint8_t* g0 = a.w + g * a.group_bytes;
  const uint8_t* g1 = g0 + a.group_bytes;
  __m512 acc[TT];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const packed::WBlock2 w = packed::LoadWBlock2(Format(), g0 + QsAt<Format>(b), g1 + QsAt<Format>(b));
    const __m128i s0 = _mm_load_si128(reinterpret_cast<const __m128i*>(g0 + ScalesAt<Format>(b)));
    const __m128i s1 = _mm_load_si128(reinterpret_cast<const __m128i*>(g1 + ScalesAt<Format>(b)));
    const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(s0), s1, 1));
    for (size_t t = 0; t < TT; ++t) {
      const size_t tb = (t0 + t) * nb + b;
      const __m512i sums = packed::RowSums2(Format(), w, a.xq.qs + (t0 + t) * a.cols + 32 * b, a.xq.sum[tb]);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(a.xq.d[tb]));
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sums), scale));
    }
  }
  for (size_t t = 0; t < TT; ++t) {
    float* out = a.out + (t0 + t) * a.out_stride + g * kGroupRows;
    if (valid == 2 * kGroupRows) {
      _mm512_storeu_ps(out, acc[t]);
    } else {
      alignas(64) float rows16[2 * kGroupRows];
      _mm512_store_ps(rows16, acc[t]);
      std::memcpy(out, rows16, valid * sizeof(float));
    }
  }
}
#endif

#else

constexpr size_t kTokTile = 4;

template <class Format, size_t TT>
HWY_INLINE void PackedTile(const GemmArgs& a, size_t g, size_t t0, size_t valid) {
  const size_t nb = a.cols / 32;
  const uint8_t* group = a.w + g * a.group_bytes;
  float acc[TT][kGroupRows] = {};
  for (size_t b = 0; b < nb; ++b) {
    const WBlock w = LoadWBlock(Format(), group + QsAt<Format>(b));
    float dw[kGroupRows];
    for (size_t i = 0; i < kGroupRows; ++i) {
      uint16_t bits;
      std::memcpy(&bits, group + ScalesAt<Format>(b) + 2 * i, sizeof(bits));
      dw[i] = fp16_to_fp32(bits);
    }
    for (size_t t = 0; t < TT; ++t) {
      const size_t tb = (t0 + t) * nb + b;
      int32_t sums[kGroupRows];
      RowSums(Format(), w, a.xq.qs + (t0 + t) * a.cols + 32 * b, a.xq.sum[tb], sums);
      for (size_t i = 0; i < kGroupRows; ++i) {
        const float scale = dw[i] * a.xq.d[tb];
        acc[t][i] = acc[t][i] + static_cast<float>(sums[i]) * scale;
      }
    }
  }
  for (size_t t = 0; t < TT; ++t) StoreRows(a, g, t0 + t, valid, acc[t]);
}

#endif

// Tokens per chunk: their activations (chunk * cols bytes) stay in L2 while every group
// of the thread's rows passes over them.
constexpr size_t kTokChunk = 64;

// Rows [row_begin, row_end): whole groups (row_begin is a multiple of 8), the last one
// possibly partial at the end of the matrix.
template <class Format>
void PackedGemm(const GemmArgs& a, size_t row_begin, size_t row_end) {
  const size_t g_begin = row_begin / kGroupRows, g_end = (row_end + kGroupRows - 1) / kGroupRows;
  for (size_t c0 = 0; c0 < a.n_tokens; c0 += kTokChunk) {
    const size_t c1 = std::min(a.n_tokens, c0 + kTokChunk);
    size_t g = g_begin;
#if HWY_TARGET == HWY_AVX3_DL
    if (c1 - c0 >= kPairMinTokens) {
      for (; g + 2 <= g_end; g += 2) {
        const size_t valid = std::min(2 * kGroupRows, row_end - g * kGroupRows);
        size_t t = c0;
        for (; t + 8 <= c1; t += 8) PackedTile2<Format, 8>(a, g, t, valid);
        for (; t + 4 <= c1; t += 4) PackedTile2<Format, 4>(a, g, t, valid);
        for (; t < c1; ++t) PackedTile2<Format, 1>(a, g, t, valid);
      }
    }
#endif
    for (; g < g_end; ++g) {
      const size_t valid = std::min(kGroupRows, row_end - g * kGroupRows);
      size_t t = c0;
      for (; t + kTokTile <= c1; t += kTokTile) PackedTile<Format, kTokTile>(a, g, t, valid);
      if constexpr (kTokTile > 4) {
        for (; t + 4 <= c1; t += 4) PackedTile<Format, 4>(a, g, t, valid);
      }
      for (; t < c1; ++t) PackedTile<Format, 1>(a, g, t, valid);
    }
  }
}

}  // namespace

void FillQuantKernels(KernelTable& t) {
  t.quantize_q8 = &QuantizeQ8;
  t.gemm_q8_0 = &PackedGemm<packed::Q8_0Format>;
  t.gemm_q4_0 = &PackedGemm<packed::Q4_0Format>;
}

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/simd_index.h"

namespace h2o {

HWY_EXPORT(FillQuantKernels);

void fill_quant_kernels(int64_t hwy_target, KernelTable& table) {
  HWY_DISPATCH_TABLE(FillQuantKernels)[simd_table_index(hwy_target)](table);
}

}  // namespace h2o
#endif  // HWY_ONCE
