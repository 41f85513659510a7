// Per-target helpers (Highway "-inl" header, compiled once per target) shared by the float
// and KV kernels: the sums that end their dot products, in the orders their scalar
// references restate, and the register budget of their value accumulations.
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

// dot_f32_reference's ending: eight virtual lanes, held as kV vectors of 8 / kV lanes,
// combined as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)).
template <size_t kV, class D>
HWY_INLINE float SumEightLanes(D d, const hn::Vec<D> (&acc)[kV]) {
  static_assert(kV * hn::MaxLanes(D()) == 8);
  HWY_ALIGN float lane[8];
  for (size_t v = 0; v < kV; ++v) hn::Store(acc[v], d, lane + v * hn::MaxLanes(d));
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// SumEightLanes of four accumulator sets at once (out[k] for set acc[k]), the same bits.
// After the first step each set is one four-lane vector u = [l0+l4, l1+l5, l2+l6, l3+l7];
// adding the even lanes to the odd lanes of two such vectors gives each one's (u0+u1) and
// (u2+u3), and a second round gives (u0+u1)+(u2+u3) for all four sets in one vector.
// SumEightLanes stores each set and adds its lanes one by one: in a dot kernel whose rows
// are a few vectors long, that ending was a third of the work.
template <size_t kV, class D>
HWY_INLINE void SumEightLanesX4(D d, const hn::Vec<D>* const (&acc)[4], float* out) {
  static_assert(kV * hn::MaxLanes(D()) == 8);
#if HWY_TARGET != HWY_SCALAR
  if constexpr (hn::MaxLanes(D()) == 8 || hn::MaxLanes(D()) == 4) {
    const hn::CappedTag<float, 4> d4;
    hn::Vec<decltype(d4)> u[4];
    for (size_t k = 0; k < 4; ++k) {
      if constexpr (hn::MaxLanes(D()) == 8) {
        const hn::Half<D> dh;
        u[k] = hn::Add(hn::LowerHalf(dh, acc[k][0]), hn::UpperHalf(dh, acc[k][0]));
      } else {
        u[k] = hn::Add(acc[k][0], acc[k][1]);
      }
    }
    const auto h01 = hn::Add(hn::ConcatEven(d4, u[1], u[0]), hn::ConcatOdd(d4, u[1], u[0]));
    const auto h23 = hn::Add(hn::ConcatEven(d4, u[3], u[2]), hn::ConcatOdd(d4, u[3], u[2]));
    hn::StoreU(hn::Add(hn::ConcatEven(d4, h23, h01), hn::ConcatOdd(d4, h23, h01)), d4, out);
    return;
  }
#endif
  for (size_t k = 0; k < 4; ++k) {
    hn::Vec<D> a[kV];
    for (size_t v = 0; v < kV; ++v) a[v] = acc[k][v];
    out[k] = SumEightLanes(d, a);
  }
}

// Vectors of y that a value accumulation (y += p[j] * row j) holds in registers while it
// adds every row: 64 values where the register file allows (a head_dim-64 row in one pass
// over the rows, not two passes each reading half of every row), 4 vectors otherwise.
// Every count gives the same bits (each y[i] adds the rows in order).
template <class D>
constexpr size_t kAxpyVecs = hn::MaxLanes(D()) == 8 ? 8 : 4;

}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
