// Eviction policies (shared/spec/kv-policies.md). A policy only chooses victims; the
// cache (kv_cache.h) stores slots and removes them, and the attention kernel supplies
// the scores a policy asks for. A new policy is one file in kv/policies/ plus one line
// in make_policy().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_config.h"

namespace h2o {

// Which per-slot attention statistics a policy needs from each step.
enum class ScoreNeed : uint8_t {
  None,         // full, window, sink, random
  Accumulated,  // h2o: probability mass summed over the group's query heads and the step's rows
  LastRow,      // tova: the mass the step's last query row gave, summed over the group
};

// The slots of one (layer, KV head), in slot order (not position order).
struct SlotView {
  const int32_t* pos = nullptr;         // absolute positions
  const float* score = nullptr;         // accumulated score (already including this step)
  const float* last_row = nullptr;      // this step's last-row mass (LastRow policies only)
  int n = 0;
};

// Identifies the eviction for policies that draw random numbers.
struct EvictionSite {
  int layer = 0;
  int kv_head = 0;
  int64_t tokens_seen = 0;  // sequence length after this step
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual ScoreNeed score_need() const { return ScoreNeed::None; }
  // Appends exactly n_evict distinct slot indices of `slots` to `victims`: the lowest
  // removal keys among the unprotected slots, ties broken by older position.
  virtual void select_victims(const SlotView& slots, const EvictionSite& site, int n_evict,
                              std::vector<int>& victims) const = 0;
};

// Throws h2o::Error for an unknown policy (resolve_kv() validates the parameters).
std::unique_ptr<EvictionPolicy> make_policy(const KvResolved& kv);

// Shared by the policies: among slots not in `protected_mask`, the n_evict with the
// lowest (key, position), appended to victims.
void select_lowest(const SlotView& slots, const std::vector<uint8_t>& protected_mask,
                   const std::vector<double>& key, int n_evict, std::vector<int>& victims);
// select_lowest() for one victim keyed by a float score (h2o's accumulated mass, tova's
// last-row mass) with mark_most_recent(recent) protected, in vector passes and no
// allocation (the KV kernels' lowest_outside_recent): decoding evicts one slot per (layer,
// KV head) per step, and the general path (a mask, a copy of the keys as doubles, a branch
// per slot on random scores) was ~10% of a batched decode step. Returns the slot the
// general path would choose, or -1 where this path does not apply (the recent positions
// are not a run, a score is negative or NaN, a position negative, no slot unprotected);
// the caller then takes the general path.
int lowest_score_outside_recent(const SlotView& slots, const float* score, int recent);
// Marks the `count` slots with the highest positions (most recent) or lowest (sinks).
void mark_most_recent(const SlotView& slots, int count, std::vector<uint8_t>& mask);
void mark_oldest(const SlotView& slots, int count, std::vector<uint8_t>& mask);

}  // namespace h2o
