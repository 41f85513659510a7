// A read-only hook on attention probabilities, for analysis tools (h2o analyze). When a
// session has an observer, attention runs on one thread and reports every query row.
#pragma once

#include <cstdint>
#include <functional>

namespace h2o {

struct AttentionRow {
  int layer = 0;
  int q_head = 0;
  int kv_head = 0;
  int32_t q_pos = 0;              // absolute position of the query token
  const int32_t* slot_pos = nullptr;  // [n] positions of the keys this row attended to
  const float* probs = nullptr;       // [n] softmax probabilities (sum to 1)
  int n = 0;
};

using AttentionObserver = std::function<void(const AttentionRow&)>;

}  // namespace h2o
