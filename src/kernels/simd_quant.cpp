// Quantized kernels for every compiled Highway target: activations to Q8_0 blocks and Q8_K
// super-blocks (format/types/int_dot.h), and the matrix products of every quantized type's
// packed weights with them (packed_gemm-inl.h; llama.cpp's vec_dot_*_q8_0 / _q8_K idea
// on row groups, written afresh). One line per type below; a type without one runs its
// reference (matmul.cpp), as does every type on targets below AVX2.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_quant.cpp"
// clang-format off
#include "common/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/tensor_type.h"
#include "format/types/types.h"
#include "kernels/kernel_table.h"
#include "kernels/packed_gemm-inl.h"

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

// quantize_q8_k_reference, vectorised: per super-block of 256, iscale = -127 / (the first
// largest-magnitude value), q = min(127, round-to-even(iscale * x)), d = 1 / iscale; the
// sums of every 16 and 32 values (exact: whole numbers below 2^24 in float).
void QuantizeQ8K(const float* x, size_t n, int8_t* qs, float* dq, int16_t* sum16, int16_t* sum32) {
  using DF = hn::CappedTag<float, 8>;
  using VF = hn::Vec<DF>;
  constexpr size_t kN = hn::MaxLanes(DF());
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  for (size_t i = 0; i < n / 256; ++i, x += 256, qs += 256) {
    VF m = hn::Zero(df);
    for (size_t k = 0; k < 256; k += kN) m = hn::Max(m, hn::Abs(hn::LoadU(df, x + k)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, m));
    if (!(amax > 0.0f)) {  // zero (or NaN: the reference skips NaNs, so would find no max)
      dq[i] = 0.0f;
      std::memset(qs, 0, 256);
      for (size_t j = 0; j < 16; ++j) sum16[16 * i + j] = 0;
      for (size_t j = 0; j < 8; ++j) sum32[8 * i + j] = 0;
      continue;
    }
    size_t first = 0;
    while (first < 255 && !(std::fabs(x[first]) == amax)) ++first;
    const float iscale = -127.0f / x[first];
    const VF vis = hn::Set(df, iscale), cap = hn::Set(df, 127.0f);
    for (size_t j = 0; j < 16; ++j) {
      VF total = hn::Zero(df);
      for (size_t k = 16 * j; k < 16 * j + 16; k += kN) {
        const VF r = hn::Min(hn::Round(hn::Mul(hn::LoadU(df, x + k), vis)), cap);
        total = hn::Add(total, r);
        hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, r)), d8, qs + k);
      }
      sum16[16 * i + j] = static_cast<int16_t>(hn::GetLane(hn::SumOfLanes(df, total)));
    }
    for (size_t j = 0; j < 8; ++j) sum32[8 * i + j] = static_cast<int16_t>(sum16[16 * i + 2 * j] + sum16[16 * i + 2 * j + 1]);
    dq[i] = 1.0f / iscale;
  }
}

}  // namespace

void FillQuantKernels(KernelTable& t) {
  t.quantize_q8 = &QuantizeQ8;
  t.quantize_q8k = &QuantizeQ8K;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // as in packed_gemm-inl.h
  using packed::PackedGemm;
  t.gemm[type_slot(TensorType::Q4_0)] = &PackedGemm<kQ4_0Format>;
  t.gemm[type_slot(TensorType::Q4_1)] = &PackedGemm<kQ4_1Format>;
  t.gemm[type_slot(TensorType::Q5_0)] = &PackedGemm<kQ5_0Format>;
  t.gemm[type_slot(TensorType::Q5_1)] = &PackedGemm<kQ5_1Format>;
  t.gemm[type_slot(TensorType::Q8_0)] = &PackedGemm<kQ8_0Format>;
  t.gemm[type_slot(TensorType::IQ4_NL)] = &PackedGemm<kIQ4_NLFormat>;
  t.gemm[type_slot(TensorType::Q2_K)] = &PackedGemm<kQ2_KFormat>;
  t.gemm[type_slot(TensorType::Q3_K)] = &PackedGemm<kQ3_KFormat>;
  t.gemm[type_slot(TensorType::Q4_K)] = &PackedGemm<kQ4_KFormat>;
  t.gemm[type_slot(TensorType::Q5_K)] = &PackedGemm<kQ5_KFormat>;
  t.gemm[type_slot(TensorType::Q6_K)] = &PackedGemm<kQ6_KFormat>;
  t.gemm[type_slot(TensorType::IQ4_XS)] = &PackedGemm<kIQ4_XSFormat>;
#endif
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
