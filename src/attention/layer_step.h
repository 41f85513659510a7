// One layer's share of the KV contract (shared/spec/kv-policies.md, "One step"), written
// once for every architecture: the forward driver hands over the layer's q, k, v of every
// sequence in the step, and this applies positions (RoPE), appends the new slots, runs
// attention and lets each cache finish the step (score update, eviction).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/attention.h"
#include "attention/attention_observer.h"
#include "common/thread_pool.h"
#include "kernels/rope.h"
#include "kv/kv_cache.h"
#include "kv/kv_shape.h"

namespace h2o {

// One sequence's rows of one layer in a batched step.
struct LayerSegment {
  float* q = nullptr;              // [n_rows][n_heads*head_dim], before RoPE (rotated in place)
  float* k = nullptr;              // [n_rows][n_kv_heads*head_dim], before RoPE (rotated in place)
  const float* v = nullptr;        // [n_rows][n_kv_heads*head_dim]
  const int32_t* pos = nullptr;    // [n_rows] absolute positions
  int n_rows = 0;
  KvCache* cache = nullptr;        // this sequence's cache (begin_step already called)
  int64_t tokens_seen = 0;         // sequence length after this step
  float* out = nullptr;            // [n_rows][n_heads*head_dim] attention output
};

class LayerAttention {
 public:
  // rope: the model's table (disabled for models without rotary embeddings). An observer,
  // if given, sees every attention row (single-threaded then).
  void run(const AttentionShape& shape, const RopeTable& rope, int layer, std::span<const LayerSegment> segments,
           ThreadPool& pool, const AttentionObserver* observer = nullptr);

 private:
  std::vector<AttentionJob> jobs_;  // [segments]
  std::vector<float> cos_sin_;      // [n_rot/2][2] angles of one row
};

}  // namespace h2o
