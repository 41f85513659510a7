// Accumulated attention by key position, for analysis front ends (the Python module's
// Session.attention()): per (layer, query head), the probability mass every key position
// received summed over the query rows observed (H2O's accumulated attention score, indexed
// by absolute position rather than by cache slot), and the latest row of each head.
// Unlike AttentionStats (eval/analyze.h) it needs no sequence length up front and takes rows
// from any policy and any number of feeds: it grows with the largest position seen.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/attention_observer.h"

namespace h2o {

class AttentionAccumulator {
 public:
  AttentionAccumulator(int n_layers, int n_heads);

  // Adds the row's probabilities at its key positions. Throws h2o::Error for a layer or
  // head out of range or a negative position.
  void observe(const AttentionRow& row);
  // Forgets every row (keeps the shape).
  void clear();

  int n_layers() const { return n_layers_; }
  int n_heads() const { return n_heads_; }
  // 1 + the largest key or query position seen; 0 before any row.
  int n_positions() const { return n_positions_; }
  // Query rows observed for (layer, head).
  int64_t rows(int layer, int head) const;
  // [n_heads][n_positions], row-major: summed probability per key position. Each head's row
  // sums to rows(layer, head) (every attention row sums to 1).
  std::vector<double> accumulated(int layer) const;
  // [n_heads][n_positions]: the probabilities of each head's latest row (0 at positions it
  // did not attend to: later, evicted, or never seen); all 0 for a head without rows.
  std::vector<float> last_row(int layer) const;
  // Query position of each head's latest row ([n_heads]; -1 for a head without rows).
  std::vector<int32_t> last_query_position(int layer) const;

 private:
  struct Head {
    int64_t rows = 0;
    std::vector<double> acc;  // by key position; may be shorter than n_positions_
    int32_t last_q = -1;
    std::vector<int32_t> last_pos;  // the latest row's key positions
    std::vector<float> last_probs;  // and probabilities
  };
  // Index of (layer, head) in heads_; throws h2o::Error when out of range.
  size_t index(int layer, int head) const;
  const Head& head_at(int layer, int head) const { return heads_[index(layer, head)]; }

  int n_layers_, n_heads_;
  int n_positions_ = 0;
  std::vector<Head> heads_;  // [layer][head]
};

}  // namespace h2o
