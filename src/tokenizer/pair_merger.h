// The BPE merge loop shared by both tokenizer kinds: repeatedly merge the adjacent pair
// with the lowest cost, leftmost pair on ties, until no pair can merge. SentencePiece
// BPE's cost is minus the merged piece's score; byte-level BPE's is the merge rank
// (model-families.md 3.5).
//
// Rescanning the sequence per merge is O(n^2); instead the symbols form a linked list and
// candidate pairs sit in a priority queue ordered (cost asc, left position asc). A
// candidate goes stale when either side has changed since it was pushed; stale ones are
// skipped when popped. The queue always holds every current adjacent mergeable pair, so
// the pop order is exactly the greedy choice. One merger can be reused across the pieces
// of a text so its buffers are allocated once.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <span>
#include <vector>

namespace h2o {

struct MergeCandidate {
  float cost;      // lower merges first
  int32_t merged;  // the token the pair becomes
};

class PairMerger {
 public:
  // Merges `tokens` in place; returns how many tokens the merged sequence has.
  // `lookup(left, right)` returns the pair's merge, or nullopt if it never merges.
  template <typename Lookup>
  size_t run(std::span<int32_t> tokens, const Lookup& lookup) {
    const auto n = static_cast<int32_t>(tokens.size());
    symbols_.resize(tokens.size());
    for (int32_t i = 0; i < n; ++i) symbols_[i] = {tokens[i], i - 1, i + 1 < n ? i + 1 : -1};
    for (int32_t i = 0; i + 1 < n; ++i) consider(i, lookup);
    while (!queue_.empty()) {
      const Candidate c = queue_.top();
      queue_.pop();
      if (is_current(c)) apply(c, lookup);
    }
    // Symbol 0 is never absorbed (it is nobody's right neighbour), so the list starts there.
    size_t count = 0;
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols_[i].next) tokens[count++] = symbols_[i].token;
    return count;
  }

 private:
  struct Symbol {
    int32_t token;  // -1 once absorbed into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    float cost;
    int32_t left;
    int32_t right;
    int32_t left_token;
    int32_t right_token;
    int32_t merged;
  };
  // "a < b" in priority-queue terms: a pops later than b.
  struct PopsLater {
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.cost != b.cost) return a.cost > b.cost;
      return a.left > b.left;
    }
  };

  // Queues the pair (left, its right neighbour) if it merges.
  template <typename Lookup>
  void consider(int32_t left, const Lookup& lookup) {
    const int32_t right = symbols_[left].next;
    if (right < 0) return;
    const int32_t lt = symbols_[left].token;
    const int32_t rt = symbols_[right].token;
    if (const std::optional<MergeCandidate> m = lookup(lt, rt)) queue_.push({m->cost, left, right, lt, rt, m->merged});
  }

  // A merge turns the left symbol into a longer token, so its id changes; the right symbol
  // dies. So unchanged ids on both sides, still adjacent, mean the pair is current.
  bool is_current(const Candidate& c) const {
    const Symbol& l = symbols_[c.left];
    return l.token == c.left_token && l.next == c.right && symbols_[c.right].token == c.right_token;
  }

  template <typename Lookup>
  void apply(const Candidate& c, const Lookup& lookup) {
    Symbol& l = symbols_[c.left];
    Symbol& r = symbols_[c.right];
    l.token = c.merged;
    l.next = r.next;
    if (r.next >= 0) symbols_[r.next].prev = c.left;
    r.token = -1;
    if (l.prev >= 0) consider(l.prev, lookup);
    consider(c.left, lookup);
  }

  std::vector<Symbol> symbols_;
  std::priority_queue<Candidate, std::vector<Candidate>, PopsLater> queue_;
};

}  // namespace h2o
