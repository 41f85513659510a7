#include "attention/layer_step.h"

#include <algorithm>

#include "common/check.h"

namespace h2o {

void LayerAttention::run(const AttentionShape& shape, const RopeTable& rope, int layer,
                         std::span<const LayerSegment> segments, ThreadPool& pool, const AttentionObserver* observer) {
  const size_t qd = static_cast<size_t>(shape.q_dim()), kvd = static_cast<size_t>(shape.kv_dim());
  const size_t n_rot = static_cast<size_t>(rope.n_rot());
  // Cache positions: after the append, every head of a cache holds n slots, the step's
  // rows the highest ranks n - T .. n - 1. The rank tables are grown first, here: ensure()
  // may move them, and the segments below read them from several threads.
  int max_slots = 0;
  size_t rows = 0;
  for (const LayerSegment& s : segments) {
    rows += static_cast<size_t>(s.n_rows);
    if (s.cache->settings().positions != KvPositions::Cache) continue;
    if (!rope.enabled()) fail("--kv-positions cache: this model has no rotary position embeddings to re-index");
    max_slots = std::max(max_slots, s.cache->n_slots(layer) + s.n_rows);
  }
  if (max_slots > 0) ranks_.ensure(rope, max_slots);
  // Per sequence (its own cache, its own rows; any thread): positions, then the append.
  jobs_.resize(segments.size());
  cos_sin_.resize(static_cast<size_t>(pool.size()) * n_rot);
  const size_t append_work = rows * (qd + 2 * kvd) * 8;  // rotations, row encodings: a few ops per value
  pool.parallel_claim(
      segments.size(),
      [&](size_t i, size_t part) {
        const LayerSegment& s = segments[i];
        const bool by_rank = s.cache->settings().positions == KvPositions::Cache;
        if (!by_rank && rope.enabled()) {
          // Absolute positions: keys are cached after RoPE at their absolute positions.
          float* cs = &cos_sin_[part * n_rot];
          for (size_t t = 0; t < static_cast<size_t>(s.n_rows); ++t) {
            rope.angles(s.pos[t], cs);
            rope.rotate(s.q + t * qd, shape.n_heads, cs);
            rope.rotate(s.k + t * kvd, shape.n_kv_heads, cs);
          }
        }
        s.cache->append(layer, s.k, s.v, s.pos, s.n_rows);
        jobs_[i] = AttentionJob{s.q, s.pos, s.n_rows, s.cache->layer_view(layer), s.out, {}};
        if (by_rank) {
          const int n = jobs_[i].kv.n;
          for (int t = 0; t < s.n_rows; ++t)
            rope.rotate(s.q + static_cast<size_t>(t) * qd, shape.n_heads, ranks_.angles(n - s.n_rows + t));
          jobs_[i].key_rope = ranks_.key_rows();
        }
      },
      append_work);
  if (observer) {
    for (const AttentionJob& j : jobs_) attention(shape, j, pool, observer, layer);
  } else {
    attention_batch(shape, jobs_, pool);
  }
  // Score update and eviction, per cache.
  size_t evict_work = 0;
  for (const AttentionJob& j : jobs_)
    evict_work += static_cast<size_t>(j.kv.n) * static_cast<size_t>(shape.n_kv_heads) * 16;
  pool.parallel_claim(
      segments.size(), [&](size_t i, size_t) { segments[i].cache->finish_step(layer, segments[i].tokens_seen); },
      evict_work);
}

}  // namespace h2o
