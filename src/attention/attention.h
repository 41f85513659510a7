// Causal grouped-query attention over a KV cache's slots, producing on request the
// per-slot statistics that eviction policies consume (in the same pass: the softmax
// probabilities are added to the statistics while the values are accumulated).
#pragma once

#include <cstdint>
#include <span>

#include "attention/attention_observer.h"
#include "common/thread_pool.h"
#include "kernels/kv_kernels.h"
#include "kv/kv_cache.h"

namespace h2o {

// One sequence's share of a step: its query rows and its own cache's layer view.
//
// q:   [n_rows][n_heads*head_dim], rotated (RoPE at the row's absolute position, or under
//      `cache` positions at its rank); row i is at absolute position q_pos[i].
// out: [n_rows][n_heads*head_dim].
// Query head j reads KV head j / group_size; row i sees the slots with pos <= q_pos[i].
// Keys and values are read in the cache's stored type. Under `cache` positions (kv.order
// set) the slots are visited by rank and key_rope rotates the key of rank r by rank r.
// If kv.mass is set, adds p(row, slot) summed over the group's heads and all rows;
// if kv.last_row_mass is set, adds p(last row, slot) summed over the group's heads.
struct AttentionJob {
  const float* q = nullptr;        // [n_rows][n_heads*head_dim]
  const int32_t* q_pos = nullptr;  // [n_rows]
  int n_rows = 0;
  KvLayerView kv;
  float* out = nullptr;  // [n_rows][n_heads*head_dim]
  KvRopeRows key_rope;   // `cache` positions: rotations of ranks 0..kv.n-1
};

// One job. If `observer` is non-null, it sees every row's probabilities (single-threaded then).
void attention(const AttentionShape& shape, const AttentionJob& job, ThreadPool& pool,
               const AttentionObserver* observer = nullptr, int layer = 0);

// attention() for several sequences at once, parallel over (sequence, KV head). Each job
// gets exactly the result attention() would give it alone.
void attention_batch(const AttentionShape& shape, std::span<const AttentionJob> jobs, ThreadPool& pool);

}  // namespace h2o
