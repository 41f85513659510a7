// Slot storage of one sequence's KV cache (shared/spec/kv-policies.md).
//
// Per (layer, KV head) there is a set of slots, each holding a key and a value vector
// (after RoPE), the token's absolute position and its accumulated attention score.
// Layout per layer, with cap = capacity():
//   keys   [n_kv_heads][cap][head_dim]   values [n_kv_heads][cap][head_dim]
//   pos    [n_kv_heads][cap]             score  [n_kv_heads][cap]
// Slots 0..n_slots(layer)-1 are live; their order is arbitrary (not by position).
//
// A bounded policy allocates budget + largest step slots once, at the first step (a
// sequence waiting in a batch holds no memory); `full` grows in pages of kPageSlots. Evicted slots are refilled in
// place by moving the last live slot into the hole: no per-step allocation, no compaction of the whole cache.
//
// Step protocol for every layer: begin_step() once, then per layer append() the step's
// T tokens, run attention over layer_view() (filling the stats the policy needs), and
// finish_step() (score update, then eviction down to the budget).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_config.h"
#include "kv/policy.h"
#include "kv/kv_shape.h"

namespace h2o {

// What the attention kernel reads and writes for one layer.
struct KvLayerView {
  const float* keys = nullptr;    // [n_kv_heads][cap][head_dim]
  const float* values = nullptr;  // [n_kv_heads][cap][head_dim]
  const int32_t* pos = nullptr;   // [n_kv_heads][cap]
  size_t cap = 0;                 // slot stride between heads
  int n = 0;                      // live slots per head
  // Statistics the policy asked for, [n_kv_heads][cap], zeroed by append(); null if not needed.
  float* mass = nullptr;           // sum over the group's heads and the step's rows of p(row, slot)
  float* last_row_mass = nullptr;  // sum over the group's heads of p(last row, slot)
};

class KvCache {
 public:
  static constexpr int kPageSlots = 16;

  // max_step: the largest number of tokens one step will append (the prefill chunk), or 0
  // if unknown: a bounded cache is then sized by its first step (budget + that step) and
  // grows once if a later step is larger.
  KvCache(const AttentionShape& shape, const KvResolved& kv, int max_step);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvResolved& settings() const { return kv_; }
  ScoreNeed score_need() const { return policy_->score_need(); }

  // Makes room for n_tokens more slots per head (grows `full`; bounded caches are sized
  // for budget + max_step already). Call once per step, before the first layer.
  void begin_step(int n_tokens);
  // Copies the step's keys/values ([T][n_kv_heads*head_dim]) into new slots with score 0.
  void append(int layer, const float* k, const float* v, const int32_t* positions, int n_tokens);
  KvLayerView layer_view(int layer);
  // Adds this step's mass to the scores, then evicts down to the budget (per KV head).
  void finish_step(int layer, int64_t tokens_seen);

  // Resets to an empty sequence (keeps the allocation).
  void clear();
  // A bounded cache sized for a large step (the prompt) gives the extra slots back once
  // later steps are at most max_step tokens (decoding: 1): capacity becomes B + max_step.
  // No-op for `full` or when the cache is already that small.
  void shrink_to_step(int max_step);

  // Bytes a cache of `cap` slots per head takes for this shape and policy (the same
  // accounting as bytes()), for planning how many sequences fit a memory cap.
  static size_t bytes_for(const AttentionShape& shape, const KvResolved& kv, int cap);

  int n_slots(int layer) const { return layers_[static_cast<size_t>(layer)].n; }
  int capacity() const { return cap_; }
  // Read access for tests and analysis: slots of one (layer, KV head).
  const int32_t* positions(int layer, int kv_head) const;
  const float* scores(int layer, int kv_head) const;
  const float* keys(int layer, int kv_head) const;
  const float* values(int layer, int kv_head) const;

  // Bytes allocated for keys, values, positions, scores and the per-step score scratch.
  size_t bytes() const { return bytes_; }
  size_t peak_bytes() const { return peak_bytes_; }

 private:
  struct Layer {
    std::vector<float> keys, values, score;
    std::vector<int32_t> pos;
    int n = 0;
  };
  void reallocate(int new_cap);
  void evict_head(Layer& layer, int layer_index, int kv_head, int n_evict, int64_t tokens_seen);
  void update_bytes();

  AttentionShape cfg_;
  KvResolved kv_;
  std::unique_ptr<EvictionPolicy> policy_;
  int cap_ = 0;
  int max_step_ = 0;
  std::vector<Layer> layers_;
  std::vector<float> mass_, last_mass_;  // scratch [n_kv_heads][cap], reused by every layer
  std::vector<int> victims_;
  size_t bytes_ = 0, peak_bytes_ = 0;
};

}  // namespace h2o
