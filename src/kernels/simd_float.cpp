// Float kernels for every compiled Highway target: dot_f32 and axpy_f32 (bit-identical to
// their scalar references), and the matrix products with F32, F16 and BF16 weights, which
// convert F16/BF16 in registers (no decoded row).
//
// Matrix products: 16 virtual lanes per output (kV vectors of N lanes, N = 4, 8 or 16),
// lane i % 16 accumulates fused multiply-adds, then a halving sum. Each output value has
// this one order whatever the target width, tile, token count or thread count, so AVX2 and
// AVX-512 give the same bits (SSE4 and the portable fallback have no fused multiply-add
// and round twice).
//
// Tiles: R weight rows x TT tokens; every weight vector is loaded once per tile and used for
// TT tokens (the prefill GEMM), every activation vector once for R rows.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_float.cpp"
// clang-format off
#include "common/strict_fp.h"  // first: see there
#include "kernels/simd_config.h"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/simd_sum-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------- dot_f32, axpy_f32

// dot_f32_reference's order: eight lanes of multiply-then-add (never fused: the reference
// is plain C++), combined as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)), then the tail in order.
float DotF32(const float* a, const float* b, size_t n) {
  const hn::CappedTag<float, 8> d;
  constexpr size_t N = hn::MaxLanes(d), kV = 8 / N;
  hn::Vec<decltype(d)> acc[kV];
  for (auto& v : acc) v = hn::Zero(d);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t v = 0; v < kV; ++v) {
      acc[v] = hn::Add(acc[v], hn::Mul(hn::LoadU(d, a + i + v * N), hn::LoadU(d, b + i + v * N)));
    }
  }
  float s = SumEightLanes(d, acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AxpyF32(float a, const float* x, float* y, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, y + i), hn::Mul(va, hn::LoadU(d, x + i))), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void DotRowsF32(const float* q, const float* rows, const uint32_t* idx, size_t m, size_t n, float* out) {
  for (size_t j = 0; j < m; ++j) out[j] = DotF32(q, rows + idx[j] * n, n);
}

// y is held in registers, kY vectors at a time (kAxpyVecs, simd_sum-inl.h), while every
// row is added to it.
void AxpyRowsF32(const float* p, const float* rows, const uint32_t* idx, size_t m, size_t n, float* y) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  constexpr size_t kY = kAxpyVecs<decltype(d)>;
  size_t i = 0;
  for (; i + kY * N <= n; i += kY * N) {
    hn::Vec<decltype(d)> acc[kY];
    for (size_t v = 0; v < kY; ++v) acc[v] = hn::LoadU(d, y + i + v * N);
    for (size_t j = 0; j < m; ++j) {
      const float* x = rows + idx[j] * n + i;
      const auto va = hn::Set(d, p[j]);
      for (size_t v = 0; v < kY; ++v) acc[v] = hn::Add(acc[v], hn::Mul(va, hn::LoadU(d, x + v * N)));
    }
    for (size_t v = 0; v < kY; ++v) hn::StoreU(acc[v], d, y + i + v * N);
  }
  for (size_t j = 0; j < m && i < n; ++j) AxpyF32(p[j], rows + idx[j] * n + i, y + i, n - i);
}

// ---------------------------------------------------------------- softmax

// exp_f32_reference's operations on every lane (multiply then add, never fused), so its bits.
template <class D>
HWY_INLINE hn::Vec<D> ExpF32(D d, hn::Vec<D> in) {
  const hn::RebindToSigned<D> di;
  const auto x = hn::Min(hn::Max(in, hn::Set(d, -104.0f)), hn::Set(d, 89.0f));
  const auto fn = hn::Floor(hn::Add(hn::Mul(hn::Set(d, 1.44269504088896341f), x), hn::Set(d, 0.5f)));
  auto r = hn::Sub(x, hn::Mul(fn, hn::Set(d, 0.693359375f)));
  r = hn::Sub(r, hn::Mul(fn, hn::Set(d, -2.12194440e-4f)));
  const auto r2 = hn::Mul(r, r);
  auto p = hn::Set(d, 1.9875691500e-4f);
  p = hn::Add(hn::Mul(p, r), hn::Set(d, 1.3981999507e-3f));
  p = hn::Add(hn::Mul(p, r), hn::Set(d, 8.3334519073e-3f));
  p = hn::Add(hn::Mul(p, r), hn::Set(d, 4.1665795894e-2f));
  p = hn::Add(hn::Mul(p, r), hn::Set(d, 1.6666665459e-1f));
  p = hn::Add(hn::Mul(p, r), hn::Set(d, 5.0000001201e-1f));
  const auto y = hn::Add(hn::Add(hn::Mul(p, r2), r), hn::Set(d, 1.0f));
  const auto n = hn::ConvertTo(di, fn);
  const auto n1 = hn::ShiftRight<1>(n);
  const auto n2 = hn::Sub(n, n1);
  const auto bias = hn::Set(di, 127);
  const auto pow1 = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(n1, bias)));
  const auto pow2 = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(n2, bias)));
  // A NaN input stays NaN (Min/Max may have replaced it by a bound).
  return hn::IfThenElse(hn::IsNaN(in), in, hn::Mul(hn::Mul(y, pow1), pow2));
}

// softmax_f32_reference: the maximum (exact in any order), e^(x - max) with the sum in
// dot_f32's eight lanes, then one division per value.
void SoftmaxF32(float* x, size_t n) {
  const hn::ScalableTag<float> dw;
  const size_t NW = hn::Lanes(dw);
  float max = x[0];
  size_t i = 0;
  if (n >= NW) {
    auto vmax = hn::LoadU(dw, x);
    for (i = NW; i + NW <= n; i += NW) vmax = hn::Max(vmax, hn::LoadU(dw, x + i));
    max = hn::GetLane(hn::MaxOfLanes(dw, vmax));
  }
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;

  const hn::CappedTag<float, 8> d;
  constexpr size_t N = hn::MaxLanes(d), kV = 8 / N;
  const auto vm = hn::Set(d, max);
  hn::Vec<decltype(d)> acc[kV];
  for (auto& v : acc) v = hn::Zero(d);
  for (i = 0; i + 8 <= n; i += 8) {
    for (size_t v = 0; v < kV; ++v) {
      const auto e = ExpF32(d, hn::Sub(hn::LoadU(d, x + i + v * N), vm));
      hn::StoreU(e, d, x + i + v * N);
      acc[v] = hn::Add(acc[v], e);
    }
  }
  float sum = SumEightLanes(d, acc);
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) {
    x[i] = hn::GetLane(ExpF32(d1, hn::Set(d1, x[i] - max)));
    sum += x[i];
  }
  const auto vs = hn::Set(dw, sum);
  for (i = 0; i + NW <= n; i += NW) hn::StoreU(hn::Div(hn::LoadU(dw, x + i), vs), dw, x + i);
  for (; i < n; ++i) x[i] /= sum;
}

// swiglu_f32_reference lane by lane.
void SwigluF32(float* gate, const float* up, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  const auto step = [&](auto dv, size_t at) {
    const auto g = hn::LoadU(dv, gate + at);
    const auto silu = hn::Mul(g, hn::Div(hn::Set(dv, 1.0f), hn::Add(hn::Set(dv, 1.0f), ExpF32(dv, hn::Neg(g)))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(dv, up + at)), dv, gate + at);
  };
  for (; i + N <= n; i += N) step(d, i);
  for (; i < n; ++i) step(hn::CappedTag<float, 1>(), i);
}

// ---------------------------------------------------------------- matrix products

// Vector shapes for the 16 virtual lanes: GEMM tiles use the widest vectors (up to 16
// lanes); one token uses at most 8-lane (256-bit) vectors, measured faster on Zen 4 for
// weights streamed from L3 or memory. Both sum in the same order.
using DGemm = hn::CappedTag<float, 16>;
using DMatvec = hn::CappedTag<float, 8>;

template <class D>
constexpr size_t kVecs = 16 / hn::MaxLanes(D());  // vectors per 16 virtual lanes

// Tile shape: R * TT * kV accumulators plus R * kV weight vectors fit the register file
// (16 vector registers below AVX-512, 32 with it).
constexpr size_t kRowTile = kVecs<DGemm> == 1 ? 4 : kVecs<DGemm> == 2 ? 2 : 1;
constexpr size_t kTokTile = kVecs<DGemm> == 1 ? 4 : 2;

// Weight element types: load consecutive weights as one float vector of D.
struct F32Weights {
  using T = float;
  template <class D>
  static HWY_INLINE hn::Vec<D> Load(D d, const T* p) {
    return hn::LoadU(d, p);
  }
};
struct F16Weights {
  using T = hwy::float16_t;
  template <class D>
  static HWY_INLINE hn::Vec<D> Load(D d, const T* p) {
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, D>(), p));
  }
};
struct BF16Weights {
  using T = hwy::bfloat16_t;
  template <class D>
  static HWY_INLINE hn::Vec<D> Load(D d, const T* p) {
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, D>(), p));
  }
};

// acc[r][t] += w[r][i .. i+16) * x[t][i .. i+16), lane by lane.
template <class D, class W, size_t R, size_t TT, size_t kV = kVecs<D>>
HWY_INLINE void FmaStep(hn::Vec<D> (&acc)[R][TT][kV], const typename W::T* const (&w)[R], const float* const (&x)[TT],
                        size_t i) {
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  hn::Vec<D> wv[R][kV];
  for (size_t r = 0; r < R; ++r) {
    for (size_t v = 0; v < kV; ++v) wv[r][v] = W::Load(d, w[r] + i + v * kN);
  }
  for (size_t t = 0; t < TT; ++t) {
    for (size_t v = 0; v < kV; ++v) {
      const hn::Vec<D> xv = hn::LoadU(d, x[t] + i + v * kN);
      for (size_t r = 0; r < R; ++r) acc[r][t][v] = hn::MulAdd(wv[r][v], xv, acc[r][t][v]);
    }
  }
}

// Rows r0 .. r0+R against tokens t0 .. t0+TT.
template <class D, class W, size_t R, size_t TT>
HWY_INLINE void FloatTile(const GemmArgs& a, size_t r0, size_t t0) {
  using T = typename W::T;
  constexpr size_t kV = kVecs<D>;
  const T* w[R];
  const float* x[TT];
  for (size_t r = 0; r < R; ++r) w[r] = reinterpret_cast<const T*>(a.w + (r0 + r) * a.row_bytes);
  for (size_t t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * a.cols;
  hn::Vec<D> acc[R][TT][kV];
  for (auto& rt : acc) {
    for (auto& t : rt) {
      for (auto& v : t) v = hn::Zero(D());
    }
  }
  const size_t full = a.cols / 16 * 16;
  for (size_t i = 0; i < full; i += 16) FmaStep<D, W, R, TT>(acc, w, x, i);
  if (const size_t rest = a.cols - full; rest != 0) {
    // The last cols % 16 values, zero-padded to one more step (adds +0 to their lanes).
    HWY_ALIGN T wpad[R][16] = {};
    HWY_ALIGN float xpad[TT][16] = {};
    const T* wp[R];
    const float* xp[TT];
    for (size_t r = 0; r < R; ++r) {
      std::memcpy(wpad[r], w[r] + full, rest * sizeof(T));
      wp[r] = wpad[r];
    }
    for (size_t t = 0; t < TT; ++t) {
      std::memcpy(xpad[t], x[t] + full, rest * sizeof(float));
      xp[t] = xpad[t];
    }
    FmaStep<D, W, R, TT>(acc, wp, xp, 0);
  }
  for (size_t t = 0; t < TT; ++t) {
    for (size_t r = 0; r < R; ++r) a.out[(t0 + t) * a.out_stride + r0 + r] = HalvingSum<kV>(D(), acc[r][t]);
  }
}

template <class W, size_t R>
HWY_INLINE void FloatTokens(const GemmArgs& a, size_t r0) {
  size_t t = 0;
  for (; t + kTokTile <= a.n_tokens; t += kTokTile) FloatTile<DGemm, W, R, kTokTile>(a, r0, t);
  for (; t < a.n_tokens; ++t) FloatTile<DGemm, W, R, 1>(a, r0, t);
}

// One token (decode) streams one weight row at a time: measured on Zen 4, reading several
// rows at once slows products whose weights come from L3 or memory (books4M decode -30%);
// row tiles pay off only where a weight vector is reused across tokens.
template <class W>
void FloatGemm(const GemmArgs& a, size_t row_begin, size_t row_end) {
  if (a.n_tokens == 1) {
    for (size_t r = row_begin; r < row_end; ++r) FloatTile<DMatvec, W, 1, 1>(a, r, 0);
    return;
  }
  size_t r = row_begin;
  for (; r + kRowTile <= row_end; r += kRowTile) FloatTokens<W, kRowTile>(a, r);
  for (; r < row_end; ++r) FloatTokens<W, 1>(a, r);
}

}  // namespace

void FillFloatKernels(KernelTable& t) {
  t.dot_f32 = &DotF32;
  t.axpy_f32 = &AxpyF32;
  t.dot_rows_f32 = &DotRowsF32;
  t.axpy_rows_f32 = &AxpyRowsF32;
  t.softmax_f32 = &SoftmaxF32;
  t.swiglu_f32 = &SwigluF32;
  t.gemm[type_slot(TensorType::F32)] = &FloatGemm<F32Weights>;
  t.gemm[type_slot(TensorType::F16)] = &FloatGemm<F16Weights>;
  t.gemm[type_slot(TensorType::BF16)] = &FloatGemm<BF16Weights>;
}

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/simd_index.h"

namespace h2o {

HWY_EXPORT(FillFloatKernels);

void fill_float_kernels(int64_t hwy_target, KernelTable& table) {
  HWY_DISPATCH_TABLE(FillFloatKernels)[simd_table_index(hwy_target)](table);
}

}  // namespace h2o
#endif  // HWY_ONCE
