#include "attention/rank_rotations.h"

#include <algorithm>

#include "kernels/kv_reference.h"

namespace h2o {

void RankRotations::ensure(const RopeTable& rope, int count) {
  if (owner_ != &rope || n_rot_ != static_cast<size_t>(rope.n_rot())) {
    owner_ = &rope;
    n_rot_ = static_cast<size_t>(rope.n_rot());
    neox_ = rope.style() == RopeStyle::Neox;
    count_ = 0;
    angles_.clear();
    key_rows_.clear();
  }
  if (count <= count_) return;
  // Grow geometrically: a `full` cache under cache positions adds one rank per token.
  const int target = std::max(count, count_ + count_ / 2);
  angles_.resize(static_cast<size_t>(target) * n_rot_);
  key_rows_.resize(static_cast<size_t>(target) * 2 * n_rot_);
  for (int r = count_; r < target; ++r) {
    float* a = &angles_[static_cast<size_t>(r) * n_rot_];
    rope.angles(r, a);
    kv_rope_row(a, n_rot_, neox_, &key_rows_[static_cast<size_t>(r) * 2 * n_rot_]);
  }
  count_ = target;
}

}  // namespace h2o
