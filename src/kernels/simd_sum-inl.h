// Per-target helper (Highway "-inl" header, compiled once per target): the halving sum
// that ends every SIMD dot product, in the order the *_lanes references restate.
// Include after <hwy/highway.h> inside a file compiled through foreach_target.h.

// Per-target include guard: toggled on each pass of foreach_target.h.
#if defined(H2O_KERNELS_SIMD_SUM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H2O_KERNELS_SIMD_SUM_INL_H_
#undef H2O_KERNELS_SIMD_SUM_INL_H_
#else
#define H2O_KERNELS_SIMD_SUM_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sum of the lanes of v: lane j += lane j + N/2 until one lane is left.
template <class D>
HWY_INLINE float HalvingSum(D d, hn::Vec<D> v) {
#if HWY_TARGET == HWY_SCALAR  // one lane, and no LowerHalf/UpperHalf
  (void)d;
  return hn::GetLane(v);
#else
  if constexpr (hn::MaxLanes(D()) == 1) {
    (void)d;
    return hn::GetLane(v);
  } else {
    const hn::Half<D> dh;
    return HalvingSum(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
#endif
}

// Sum of kV * N virtual lanes held as kV vectors of N lanes (vector v holds lanes
// v*N .. v*N+N-1), by the same halving: the first steps add whole vectors.
template <size_t kV, class D>
HWY_INLINE float HalvingSum(D d, const hn::Vec<D> (&acc)[kV]) {
  hn::Vec<D> part[kV];
  for (size_t v = 0; v < kV; ++v) part[v] = acc[v];
  for (size_t n = kV / 2; n >= 1; n /= 2) {
    for (size_t v = 0; v < n; ++v) part[v] = hn::Add(part[v], part[v + n]);
  }
  return HalvingSum(d, part[0]);
}

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
