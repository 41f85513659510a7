// One layer's share of the KV contract (shared/spec/kv-policies.md, "One step"), written
// once for every architecture: the forward driver hands over the layer's q, k, v of every
// sequence in the step, and this applies positions (RoPE), appends the new slots, runs
// attention and lets each cache finish the step (score update, eviction).
//
// Positions follow each cache's settings (KvResolved::positions): `absolute` rotates q and
// k at the tokens' absolute positions before k is stored; `cache` stores k before RoPE and
// rotates, after the append, every key by its rank in its (layer, KV head)'s kept set (in
// the attention kernels) and query row t by its own token's rank, n - T + t (the step's
// tokens hold the T highest positions of every head, which all hold n slots).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/attention.h"
#include "attention/attention_observer.h"
#include "attention/rank_rotations.h"
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
  // rope: the model's table (disabled for models without rotary embeddings: a cache with
  // `cache` positions is then refused). An observer, if given, sees every attention row
  // (single-threaded then).
  void run(const AttentionShape& shape, const RopeTable& rope, int layer, std::span<const LayerSegment> segments,
           ThreadPool& pool, const AttentionObserver* observer = nullptr);

 private:
  std::vector<AttentionJob> jobs_;  // [segments]
  std::vector<float> cos_sin_;      // [pool threads][n_rot/2][2]: angles of one row, per thread
  RankRotations ranks_;             // `cache` positions: rotations by rank
};

}  // namespace h2o
