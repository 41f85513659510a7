// Slot storage of one sequence's KV cache (shared/spec/kv-policies.md).
//
// Per (layer, KV head) there is a set of slots, each holding a key and a value vector in
// the cache's storage type (KvResolved::type: f32, f16, or q8 = int8 + one fp16 scale per
// vector), the token's absolute position and its accumulated attention score. Keys are
// stored after RoPE at their absolute positions, or before RoPE under `cache` positions,
// where attention rotates them by their rank at every step.
// Layout per layer, with cap = capacity() and row = kv_row_bytes(type, head_dim):
//   keys   [n_kv_heads][cap][row]        values [n_kv_heads][cap][row]
//   key_scale, value_scale [n_kv_heads][cap] (q8 only: fp16 bits)
//   pos    [n_kv_heads][cap]             score  [n_kv_heads][cap]
//   order  [n_kv_heads][cap] (`cache` positions only: the live slots by ascending position,
//          so a slot's rank is its index in order)
// Slots 0..n_slots(layer)-1 are live; their order is arbitrary (not by position).
//
// A bounded policy allocates budget + largest step slots once, at the first step (a
// sequence waiting in a batch holds no memory); `full` grows in pages of kPageSlots (its bytes are the pages; each
// layer's arrays are re-laid out in place, their allocation growing geometrically). Evicted slots are refilled in
// place by moving the last live slot into the hole: no per-step allocation, no compaction of the whole cache.
//
// Step protocol for every layer: begin_step() once, then per layer append() the step's
// T tokens, run attention over layer_view() (filling the stats the policy needs), and
// finish_step() (score update, then eviction down to the budget).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "kv/kv_config.h"
#include "kv/kv_shape.h"
#include "kv/policy.h"

namespace h2o {

// Bytes of one stored key or value vector of head_dim values (q8: the int8 values; the
// scale lives in its own plane).
size_t kv_row_bytes(KvType type, int head_dim);

// What the attention kernel reads and writes for one layer.
struct KvLayerView {
  KvType type = KvType::F32;
  const uint8_t* keys = nullptr;          // [n_kv_heads][cap] rows of row_bytes
  const uint8_t* values = nullptr;        // [n_kv_heads][cap] rows of row_bytes
  const uint16_t* key_scale = nullptr;    // q8: [n_kv_heads][cap] fp16 scales; else null
  const uint16_t* value_scale = nullptr;  // q8: [n_kv_heads][cap]; else null
  size_t row_bytes = 0;
  const int32_t* pos = nullptr;     // [n_kv_heads][cap]
  const uint32_t* order = nullptr;  // `cache` positions: [n_kv_heads][cap] live slots by ascending position; else null
  size_t cap = 0;                   // slot stride between heads
  int n = 0;                        // live slots per head
  // At least every live slot's position in every head (the newest appended: eviction may
  // leave it above them all), so a row at position q >= max_pos sees every slot.
  int32_t max_pos = std::numeric_limits<int32_t>::min();
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
  // Stores the step's keys/values ([T][n_kv_heads*head_dim], keys after RoPE, or before it
  // under `cache` positions) in the storage type, in new slots with score 0. Positions
  // must be above every position in the cache, ascending.
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
  // `cache` positions: the live slots by ascending position (null otherwise).
  const uint32_t* order(int layer, int kv_head) const;
  // A slot's stored key / value, dequantised ([head_dim]).
  void read_key(int layer, int kv_head, int slot, float* out) const;
  void read_value(int layer, int kv_head, int slot, float* out) const;

  // Bytes allocated for keys and values (in the stored type, with their scales),
  // positions, scores, the rank order (`cache` positions) and the per-step score scratch.
  size_t bytes() const { return bytes_; }
  size_t peak_bytes() const { return peak_bytes_; }

 private:
  struct Layer {
    std::vector<uint8_t> keys, values;             // [n_kv][cap][row_bytes]
    std::vector<uint16_t> key_scale, value_scale;  // q8: [n_kv][cap]
    std::vector<float> score;
    std::vector<int32_t> pos;
    std::vector<uint32_t> order;  // `cache` positions
    int n = 0;
    int32_t max_pos = std::numeric_limits<int32_t>::min();  // the newest appended position
  };
  void reallocate(int new_cap);
  void store_row(const float* x, uint8_t* row, uint16_t* scale) const;
  void read_row(const std::vector<uint8_t>& rows, const std::vector<uint16_t>& scales, int kv_head, int slot,
                float* out) const;
  void move_slot(Layer& L, size_t base, size_t from, size_t to);
  void prefetch_slot(const Layer& L, size_t slot) const;  // every head's lines of `slot`, for writing
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
  std::vector<uint32_t> rank_of_slot_;  // eviction scratch under `cache` positions
  size_t row_bytes_ = 0;
  // The active SIMD target's q8 row encoder (kv_kernels.h): the bits of encode_kv_row_q8.
  void (*encode_q8_)(const float* x, size_t n, int8_t* out, uint16_t* scale) = nullptr;
  size_t bytes_ = 0, peak_bytes_ = 0;
};

}  // namespace h2o
