// Quantized kernels for every compiled Highway target: activations to Q8_0 blocks, and the
// matrix products of Q8_0 / Q4_0 weights with them in integer arithmetic (llama.cpp's
// vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0 idea, written afresh).
//
// Per 32-value block b and j < 8, the four products 4j..4j+3 are summed exactly in int32
// (the grouping of x86 maddubs+madd, VNNI dpbusd and Arm sdot alike), converted to float,
// multiplied by d_weight * d_activation and added to float lane 8 * (b % 2) + j (multiply
// and add not fused); the sixteen lanes end in a halving sum. Every target computes
// exactly this, so the results are bit-identical across targets and to dot_q*_q8_lanes
// (reference.h). Blocks go in pairs (quant_pairs-inl.h).
//
// Tiles: R weight rows x TT tokens; a weight pair is loaded (and Q4_0 unpacked) once per
// tile and used for TT tokens (the prefill GEMM).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_quant.cpp"
// clang-format off
#include "kernels/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <cstring>

#include "format/tensor_type.h"
#include "kernels/kernel_table.h"
#include "kernels/quant_pairs-inl.h"
#include "kernels/simd_sum-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------- activations

// quantize_row(Q8_0), vectorised: d = max|x| / 127 (stored as fp16), q = x / d rounded
// half away from zero (std::lround), which Round (half to even) gets wrong only on ties.
void QuantizeQ8(const float* x, size_t n, int8_t* qs, float* dq) {
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
    for (size_t k = 0; k < kB; ++k) {
      const VF s = hn::Mul(v[k], vid);
      const VF t = hn::Trunc(s);
      const auto tie = hn::Eq(hn::Abs(hn::Sub(s, t)), half);
      const VF r = hn::IfThenElse(tie, hn::Add(t, hn::CopySign(one, s)), hn::Round(s));
      hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, r)), d8, qs + b * 32 + k * kN);
    }
  }
}

// ---------------------------------------------------------------- matrix products

// A block's fp16 scale at p (little-endian), widened.
HWY_INLINE float LoadScale(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof(bits));
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(bits);  // F16C: part of Highway's AVX2 target
#else
  return fp16_to_fp32(bits);
#endif
}

using quant::PairSums;
using quant::VF;
using quant::WPair;
constexpr size_t kPairV = quant::kV;

// Tile shape: R * TT * kPairV accumulators plus R weight pairs (2 * R * kPairV registers)
// fit the register file (16 vector registers below AVX-512, 32 with it).
constexpr bool kAvx512 = HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3;
constexpr size_t kRowTile = kAvx512 ? 2 : 1;
constexpr size_t kTokTile = kAvx512 ? 4 : kPairV == 2 ? 2 : 1;

// Adds the pair of blocks b, b + 1 (only b if !two) of rows r0.. and tokens t0.. to acc.
template <class Format, size_t R, size_t TT>
HWY_INLINE void PairStep(const GemmArgs& a, const uint8_t* const (&w)[R], size_t t0, size_t nb, size_t b, bool two,
                         VF (&acc)[R][TT][kPairV]) {
  WPair wp[R];
  float dw0[R], dw1[R];
  for (size_t r = 0; r < R; ++r) {
    const uint8_t* blk = w[r] + b * Format::kBytes;
    wp[r] = quant::LoadWPair<Format>(blk, two ? blk + Format::kBytes : nullptr);
    dw0[r] = LoadScale(blk);
    dw1[r] = two ? LoadScale(blk + Format::kBytes) : 0.0f;
  }
  for (size_t t = 0; t < TT; ++t) {
    const size_t tok = t0 + t;
    const quant::APair ap = quant::LoadAPair(a.xq.qs + tok * a.cols + b * 32, two);
    const float* da = a.xq.d + tok * nb + b;
    for (size_t r = 0; r < R; ++r) {
      VF p[kPairV];
      PairSums(wp[r], ap, p);
      // Block scale d_w * d_a: lanes 0-7 block b, lanes 8-15 block b + 1.
      const float s0 = dw0[r] * da[0], s1 = two ? dw1[r] * da[1] : 0.0f;
      VF scale[kPairV];
      quant::PairScales(s0, s1, scale);
      for (size_t v = 0; v < kPairV; ++v) acc[r][t][v] = hn::Add(acc[r][t][v], hn::Mul(p[v], scale[v]));
    }
  }
}

// Rows r0 .. r0+R against tokens t0 .. t0+TT.
template <class Format, size_t R, size_t TT>
HWY_INLINE void QuantTile(const GemmArgs& a, size_t r0, size_t t0) {
  const size_t nb = a.cols / 32;
  const uint8_t* w[R];
  for (size_t r = 0; r < R; ++r) w[r] = a.w + (r0 + r) * a.row_bytes;
  VF acc[R][TT][kPairV];
  for (auto& rt : acc) {
    for (auto& t : rt) {
      for (auto& v : t) v = hn::Zero(quant::DF());
    }
  }
  size_t b = 0;
  for (; b + 2 <= nb; b += 2) PairStep<Format, R, TT>(a, w, t0, nb, b, true, acc);
  if (b < nb) PairStep<Format, R, TT>(a, w, t0, nb, b, false, acc);  // adds +0 to lanes 8-15
  for (size_t t = 0; t < TT; ++t) {
    for (size_t r = 0; r < R; ++r) {
      a.out[(t0 + t) * a.out_stride + r0 + r] = HalvingSum<kPairV>(quant::DF(), acc[r][t]);
    }
  }
}

template <class Format, size_t R>
HWY_INLINE void QuantTokens(const GemmArgs& a, size_t r0) {
  size_t t = 0;
  for (; t + kTokTile <= a.n_tokens; t += kTokTile) QuantTile<Format, R, kTokTile>(a, r0, t);
  for (; t < a.n_tokens; ++t) QuantTile<Format, R, 1>(a, r0, t);
}

// One token (decode) streams one weight row at a time, as in simd_float.cpp.
template <class Format>
void QuantGemm(const GemmArgs& a, size_t row_begin, size_t row_end) {
  size_t r = row_begin;
  if (a.n_tokens > 1) {
    for (; r + kRowTile <= row_end; r += kRowTile) QuantTokens<Format, kRowTile>(a, r);
  }
  for (; r < row_end; ++r) QuantTokens<Format, 1>(a, r);
}

}  // namespace

void FillQuantKernels(KernelTable& t) {
  t.quantize_q8 = &QuantizeQ8;
  t.gemm_q8_0 = &QuantGemm<quant::Q8_0Format>;
  t.gemm_q4_0 = &QuantGemm<quant::Q4_0Format>;
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
