// Where a Highway target's function sits in an HWY_EXPORT table.
#pragma once

#include "kernels/simd_config.h"
// clang-format off
#include <hwy/targets.h>
// clang-format on

#include <cstddef>
#include <cstdint>

namespace h2o {

// The index HWY_DYNAMIC_DISPATCH would use if `hwy_target` (one bit of HWY_TARGETS) were
// the best target of the CPU: the same computation as hwy::ChosenTarget::GetIndex(), for a
// target chosen by us (H2O_SIMD) instead of Highway's process-wide choice. The EMU128
// fallback maps to the table's last entry.
inline size_t simd_table_index(int64_t hwy_target) {
  const int64_t mask =
      (HWY_CHOSEN_TARGET_SHIFT(hwy_target) | HWY_CHOSEN_TARGET_MASK_SCALAR) & HWY_CHOSEN_TARGET_MASK_TARGETS;
  return hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(mask));
}

}  // namespace h2o
