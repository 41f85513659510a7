#include "kv/policy.h"

#include <algorithm>
#include <numeric>

#include "common/check.h"
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
  std::vector<int> cand;
  cand.reserve(static_cast<size_t>(slots.n));
  for (int i = 0; i < slots.n; ++i) {
    if (!protected_mask[static_cast<size_t>(i)]) cand.push_back(i);
  }
  if (n_evict > static_cast<int>(cand.size()))
    fail("internal: policy must evict {} slots but only {} are unprotected", n_evict, cand.size());
  auto less = [&](int a, int b) {
    const double ka = key[static_cast<size_t>(a)], kb = key[static_cast<size_t>(b)];
    if (ka != kb) return ka < kb;
    return slots.pos[a] < slots.pos[b];
  };
  std::nth_element(cand.begin(), cand.begin() + n_evict, cand.end(), less);
  victims.insert(victims.end(), cand.begin(), cand.begin() + n_evict);
}

namespace {
void mark_by_position(const SlotView& slots, int count, bool recent, std::vector<uint8_t>& mask) {
  count = std::min(count, slots.n);
  if (count <= 0) return;
  std::vector<int> idx(static_cast<size_t>(slots.n));
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + (count - 1), idx.end(), [&](int a, int b) {
    return recent ? slots.pos[a] > slots.pos[b] : slots.pos[a] < slots.pos[b];
  });
  for (int i = 0; i < count; ++i) mask[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
}
}  // namespace

void mark_most_recent(const SlotView& slots, int count, std::vector<uint8_t>& mask) {
  mark_by_position(slots, count, true, mask);
}
void mark_oldest(const SlotView& slots, int count, std::vector<uint8_t>& mask) {
  mark_by_position(slots, count, false, mask);
}

}  // namespace h2o
