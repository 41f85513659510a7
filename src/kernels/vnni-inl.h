// Per-target primitive (Highway "-inl" header): acc += four u8 x s8 products per int32
// lane, AVX512-VNNI vpdpbusd, for __m256i and __m512i. Defined on the AVX3_DL target only;
// the packed (packed_dot-inl.h) and k-quant (simd_kquant.cpp) products use it there.
// Inline assembly: Highway 1.0.3's AVX3_DL target enables the VEX AVX-VNNI intrinsics
// (which Zen 4 lacks), not the EVEX AVX512-VNNI ones; the "v" constraint prints the
// register at the operands' width.

#if defined(H2O_KERNELS_VNNI_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H2O_KERNELS_VNNI_INL_H_
#undef H2O_KERNELS_VNNI_INL_H_
#else
#define H2O_KERNELS_VNNI_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace h2o::HWY_NAMESPACE {
namespace vnni {

#if HWY_TARGET == HWY_AVX3_DL
template <class V>  // __m256i or __m512i
HWY_INLINE V DpBusd(V acc, V u, V s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
}
#endif

}  // namespace vnni
}  // namespace h2o::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
