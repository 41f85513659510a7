// Highway settings shared by every file that includes Highway headers: include this before
// any <hwy/...> header so that all translation units agree on the compiled targets (the
// dispatch tables are indexed by target, see dispatch.cpp).
//
// - AVX3_DL (Ice Lake / Zen 4: AVX-512 VNNI) is compiled: the quantized products use
//   vpdpbusd there (simd_quant.cpp).
// - SSSE3 is left out: SSE4 serves the same machines and each target compiles every kernel
//   once more.
// - Scalable-vector targets (SVE, RVV) are left out: the kernels fix their lane layout at
//   compile time (MaxLanes), which scalable vectors do not allow.
#pragma once

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
