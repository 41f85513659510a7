#include "attention/attention_accumulator.h"

#include <algorithm>

#include "common/check.h"

namespace h2o {

AttentionAccumulator::AttentionAccumulator(int n_layers, int n_heads) : n_layers_(n_layers), n_heads_(n_heads) {
  if (n_layers < 1 || n_heads < 1)
    fail("attention accumulator: needs layers and heads, got {} x {}", n_layers, n_heads);
  heads_.resize(static_cast<size_t>(n_layers) * static_cast<size_t>(n_heads));
}

size_t AttentionAccumulator::index(int layer, int head) const {
  if (layer < 0 || layer >= n_layers_ || head < 0 || head >= n_heads_)
    fail("attention: layer {} head {} out of range ({} layers, {} heads)", layer, head, n_layers_, n_heads_);
  return static_cast<size_t>(layer) * static_cast<size_t>(n_heads_) + static_cast<size_t>(head);
}

void AttentionAccumulator::observe(const AttentionRow& row) {
  Head& h = heads_[index(row.layer, row.q_head)];
  if (row.q_pos < 0) fail("attention: negative query position {}", row.q_pos);
  int32_t top = row.q_pos;
  for (int j = 0; j < row.n; ++j) {
    if (row.slot_pos[j] < 0) fail("attention: negative key position {}", row.slot_pos[j]);
    top = std::max(top, row.slot_pos[j]);
  }
  n_positions_ = std::max(n_positions_, top + 1);
  if (h.acc.size() < static_cast<size_t>(top) + 1) h.acc.resize(static_cast<size_t>(top) + 1, 0.0);
  for (int j = 0; j < row.n; ++j) h.acc[static_cast<size_t>(row.slot_pos[j])] += row.probs[j];
  ++h.rows;
  h.last_q = row.q_pos;
  h.last_pos.assign(row.slot_pos, row.slot_pos + row.n);
  h.last_probs.assign(row.probs, row.probs + row.n);
}

void AttentionAccumulator::clear() {
  n_positions_ = 0;
  for (Head& h : heads_) h = Head{};
}

int64_t AttentionAccumulator::rows(int layer, int head) const { return head_at(layer, head).rows; }

std::vector<double> AttentionAccumulator::accumulated(int layer) const {
  const size_t n = static_cast<size_t>(n_positions_);
  std::vector<double> out(static_cast<size_t>(n_heads_) * n, 0.0);
  for (int q = 0; q < n_heads_; ++q) {
    const Head& h = head_at(layer, q);
    std::copy(h.acc.begin(), h.acc.end(), out.begin() + static_cast<long>(static_cast<size_t>(q) * n));
  }
  return out;
}

std::vector<float> AttentionAccumulator::last_row(int layer) const {
  const size_t n = static_cast<size_t>(n_positions_);
  std::vector<float> out(static_cast<size_t>(n_heads_) * n, 0.0f);
  for (int q = 0; q < n_heads_; ++q) {
    const Head& h = head_at(layer, q);
    for (size_t j = 0; j < h.last_pos.size(); ++j)
      out[static_cast<size_t>(q) * n + static_cast<size_t>(h.last_pos[j])] = h.last_probs[j];
  }
  return out;
}

std::vector<int32_t> AttentionAccumulator::last_query_position(int layer) const {
  std::vector<int32_t> out(static_cast<size_t>(n_heads_));
  for (int q = 0; q < n_heads_; ++q) out[static_cast<size_t>(q)] = head_at(layer, q).last_q;
  return out;
}

}  // namespace h2o
