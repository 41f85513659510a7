#include "model/hf_transform.h"

#include "common/check.h"

namespace h2o {

std::vector<uint32_t> hf_row_order(HfTransform t, const ModelConfig& c, int64_t n_rows) {
  std::vector<uint32_t> order(static_cast<size_t>(n_rows));
  const int64_t hd = c.head_dim;
  switch (t) {
    case HfTransform::None:
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
      return order;
    case HfTransform::RopePermuteQ:
    case HfTransform::RopePermuteK: {
      const int64_t heads = t == HfTransform::RopePermuteQ ? c.n_heads : c.n_kv_heads;
      if (n_rows != heads * hd || hd % 2 != 0) fail("internal: RoPE row permutation of {} rows", n_rows);
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < hd / 2; ++i) {
          for (int64_t s = 0; s < 2; ++s)
            order[static_cast<size_t>(h * hd + 2 * i + s)] = static_cast<uint32_t>(h * hd + s * hd / 2 + i);
        }
      }
      return order;
    }
    case HfTransform::NeoxQkv: {
      const int64_t d = static_cast<int64_t>(c.n_heads) * hd;
      if (n_rows != 3 * d) fail("internal: QKV regrouping of {} rows", n_rows);
      for (int64_t j = 0; j < 3; ++j) {
        for (int64_t h = 0; h < c.n_heads; ++h) {
          for (int64_t r = 0; r < hd; ++r)
            order[static_cast<size_t>(j * d + h * hd + r)] = static_cast<uint32_t>(3 * hd * h + j * hd + r);
        }
      }
      return order;
    }
  }
  fail("internal: unknown HF transform");
}

}  // namespace h2o
