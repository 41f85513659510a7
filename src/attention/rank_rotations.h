// The rotations of `cache` positions (shared/spec/kv-policies.md, "Positions"): a key of
// rank r and a query whose token has rank r are rotated by RoPE at position r. Ranks never
// exceed B + T (or the sequence length under `full`), so the angles of ranks 0..count-1
// are computed once (RopeTable::angles, the same bits as absolute positions) and kept:
// per rank the query form ([n_rot/2][2] cos, sin) and the key kernels' form (KvRopeRows).
// Grown on demand, shared by every sequence of a forward driver.
#pragma once

#include <vector>

#include "kernels/kv_kernels.h"
#include "kernels/rope.h"

namespace h2o {

class RankRotations {
 public:
  // Makes ranks 0..count-1 available for `rope` (rebuilt if it was built for another table).
  void ensure(const RopeTable& rope, int count);
  int size() const { return count_; }
  // Rank r's cos, sin pairs, for RopeTable::rotate().
  const float* angles(int rank) const { return &angles_[static_cast<size_t>(rank) * n_rot_]; }
  KvRopeRows key_rows() const { return KvRopeRows{key_rows_.data(), n_rot_, neox_}; }

 private:
  const RopeTable* owner_ = nullptr;
  size_t n_rot_ = 0;
  bool neox_ = false;
  int count_ = 0;
  std::vector<float> angles_;    // [count][n_rot]
  std::vector<float> key_rows_;  // [count][2][n_rot]
};

}  // namespace h2o
