#include "kv/policy.h"

#include <algorithm>
#include <functional>

#include "common/check.h"
#include "kernels/kv_kernels.h"
#include "kv/policies/policies.h"

namespace h2o {

std::unique_ptr<EvictionPolicy> make_policy(const KvResolved& kv) {
  if (kv.policy == "full") return make_full_policy();
  if (kv.policy == "window") return make_window_policy();
  if (kv.policy == "sink") return make_sink_policy(kv.sinks);
  if (kv.policy == "h2o") return make_h2o_policy(kv.recent);
  if (kv.policy == "tova") return make_tova_policy();
  if (kv.policy == "random") return make_random_policy(kv.recent, kv.seed);
  fail("unknown KV policy '{}'", kv.policy);
}

void select_lowest(const SlotView& slots, const std::vector<uint8_t>& protected_mask,
                   const std::vector<double>& key, int n_evict, std::vector<int>& victims) {
  auto less = [&](int a, int b) {
    const double ka = key[static_cast<size_t>(a)], kb = key[static_cast<size_t>(b)];
    if (ka != kb) return ka < kb;
    return slots.pos[a] < slots.pos[b];
  };
  if (n_evict == 1) {
    // Decoding evicts one slot per step: one pass. (key, position) orders the slots
    // totally (positions are distinct), so this is the slot nth_element would choose.
    int best = -1;
    for (int i = 0; i < slots.n; ++i) {
      if (!protected_mask[static_cast<size_t>(i)] && (best < 0 || less(i, best))) best = i;
    }
    if (best < 0) fail("internal: policy must evict 1 slot but none is unprotected");
    victims.push_back(best);
    return;
  }
  std::vector<int> cand;
  cand.reserve(static_cast<size_t>(slots.n));
  for (int i = 0; i < slots.n; ++i) {
    if (!protected_mask[static_cast<size_t>(i)]) cand.push_back(i);
  }
  if (n_evict > static_cast<int>(cand.size()))
    fail("internal: policy must evict {} slots but only {} are unprotected", n_evict, cand.size());
  std::nth_element(cand.begin(), cand.begin() + n_evict, cand.end(), less);
  victims.insert(victims.end(), cand.begin(), cand.begin() + n_evict);
}

int lowest_score_outside_recent(const SlotView& slots, const float* score, int recent) {
  if (slots.n <= 0) return -1;
  return active_kv_kernels().lowest_outside_recent(score, slots.pos, static_cast<size_t>(slots.n), recent);
}

namespace {
// Marks the `count` highest (recent) or lowest positions. Positions are distinct within a
// head, so those are the ones at or beyond the count-th such position, the edge. Usually
// they are a run of consecutive positions (the R most recent under h2o, the S first under
// sink: never evicted), and then the edge is max - count + 1 (min + count - 1): when
// exactly `count` positions lie at or beyond it, they are the ones. Two passes; otherwise
// nth_element over a copy of the positions.
void mark_by_position(const SlotView& slots, int count, bool recent, std::vector<uint8_t>& mask) {
  count = std::min(count, slots.n);
  if (count <= 0) return;
  const int32_t* pos = slots.pos;
  const int n = slots.n;
  const auto beyond = [recent](int32_t p, int32_t edge) { return recent ? p >= edge : p <= edge; };
  int32_t extreme = pos[0];
  for (int i = 1; i < n; ++i) extreme = recent ? std::max(extreme, pos[i]) : std::min(extreme, pos[i]);
  int32_t edge = recent ? extreme - (count - 1) : extreme + (count - 1);
  int in_run = 0;
  for (int i = 0; i < n; ++i) in_run += beyond(pos[i], edge) ? 1 : 0;
  if (in_run != count) {
    std::vector<int32_t> p(pos, pos + n);
    const auto kth = p.begin() + (count - 1);
    if (recent) {
      std::nth_element(p.begin(), kth, p.end(), std::greater<>());
    } else {
      std::nth_element(p.begin(), kth, p.end());
    }
    edge = *kth;
  }
  for (int i = 0; i < n; ++i) {
    if (beyond(pos[i], edge)) mask[static_cast<size_t>(i)] = 1;
  }
}
}  // namespace

void mark_most_recent(const SlotView& slots, int count, std::vector<uint8_t>& mask) {
  mark_by_position(slots, count, true, mask);
}
void mark_oldest(const SlotView& slots, int count, std::vector<uint8_t>& mask) {
  mark_by_position(slots, count, false, mask);
}

}  // namespace h2o
