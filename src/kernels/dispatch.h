// Run-time choice of the SIMD target the kernels use.
//
// Every kernel is compiled once per Highway target (simd_float.cpp, simd_quant.cpp) and
// once as a scalar reference (reference.cpp). By default the best target this CPU runs is
// used; the environment variable H2O_SIMD forces one: `scalar` (the reference code),
// `sse4`, `avx2`, `avx3` (alias `avx512`), `avx3_dl` (AVX-512 with VNNI, alias
// `avx512_vnni`), or Highway's portable fallback (`emu128`, or `hwy_scalar` with GCC
// before 12.3), as far as this CPU runs them. The choice is made once per process, on
// first use, and never changes; an unknown or unsupported name is an h2o::Error.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "kernels/kernel_table.h"

namespace h2o {

struct SimdTarget {
  std::string_view name;   // lower-case Highway target name, or "scalar"
  int64_t hwy_target = 0;  // Highway's target bit; 0 for the scalar reference

  bool is_reference() const { return hwy_target == 0; }
  bool operator==(const SimdTarget&) const = default;
};

// The targets this CPU can run, best first; the scalar reference is always last.
const std::vector<SimdTarget>& available_simd_targets();

// The available target called `name` (or an alias of it); nullopt if there is none.
std::optional<SimdTarget> find_simd_target(std::string_view name);

// H2O_SIMD's target, else the best available one.
const SimdTarget& active_simd_target();

// The kernels of an available target; of the active one.
const KernelTable& kernels_for(const SimdTarget& target);
const KernelTable& active_kernels();

}  // namespace h2o
