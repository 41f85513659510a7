#include "attention/layer_step.h"

#include "common/check.h"

namespace h2o {

void LayerAttention::run(const AttentionShape& shape, const RopeTable& rope, int layer,
                         std::span<const LayerSegment> segments, ThreadPool& pool, const AttentionObserver* observer) {
  const size_t qd = static_cast<size_t>(shape.q_dim()), kvd = static_cast<size_t>(shape.kv_dim());
  // Absolute positions: keys are cached after RoPE at their absolute positions.
  cos_sin_.resize(static_cast<size_t>(rope.n_rot()));
  for (const LayerSegment& s : segments) {
    if (s.cache->settings().positions == KvPositions::Cache) {
      if (!rope.enabled()) fail("--kv-positions cache: this model has no rotary position embeddings to re-index");
      continue;
    }
    if (!rope.enabled()) continue;
    for (size_t t = 0; t < static_cast<size_t>(s.n_rows); ++t) {
      rope.angles(s.pos[t], cos_sin_.data());
      rope.rotate(s.q + t * qd, shape.n_heads, cos_sin_.data());
      rope.rotate(s.k + t * kvd, shape.n_kv_heads, cos_sin_.data());
    }
  }
  jobs_.resize(segments.size());
  for (size_t i = 0; i < segments.size(); ++i) {
    const LayerSegment& s = segments[i];
    s.cache->append(layer, s.k, s.v, s.pos, s.n_rows);
    jobs_[i] = AttentionJob{s.q, s.pos, s.n_rows, s.cache->layer_view(layer), s.out, {}};
  }
  // Cache positions: after the append, every head of a cache holds n slots, the step's rows
  // the highest ranks n - T .. n - 1.
  for (size_t i = 0; i < segments.size(); ++i) {
    const LayerSegment& s = segments[i];
    if (s.cache->settings().positions != KvPositions::Cache) continue;
    const int n = jobs_[i].kv.n;
    ranks_.ensure(rope, n);
    for (int t = 0; t < s.n_rows; ++t)
      rope.rotate(s.q + static_cast<size_t>(t) * qd, shape.n_heads, ranks_.angles(n - s.n_rows + t));
  }
  // Only now: ensure() may have moved the tables.
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].cache->settings().positions == KvPositions::Cache) jobs_[i].key_rope = ranks_.key_rows();
  }
  if (observer) {
    for (const AttentionJob& j : jobs_) attention(shape, j, pool, observer, layer);
  } else {
    attention_batch(shape, jobs_, pool);
  }
  for (const LayerSegment& s : segments) s.cache->finish_step(layer, s.tokens_seen);
}

}  // namespace h2o
