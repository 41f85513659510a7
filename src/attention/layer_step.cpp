#include "attention/layer_step.h"

namespace h2o {

void LayerAttention::run(const AttentionShape& shape, const RopeTable& rope, int layer,
                         std::span<const LayerSegment> segments, ThreadPool& pool, const AttentionObserver* observer) {
  const size_t qd = static_cast<size_t>(shape.q_dim()), kvd = static_cast<size_t>(shape.kv_dim());
  // Positions: keys are cached after RoPE at their absolute positions.
  if (rope.enabled()) {
    cos_sin_.resize(static_cast<size_t>(rope.n_rot()));
    for (const LayerSegment& s : segments) {
      for (size_t t = 0; t < static_cast<size_t>(s.n_rows); ++t) {
        rope.angles(s.pos[t], cos_sin_.data());
        rope.rotate(s.q + t * qd, shape.n_heads, cos_sin_.data());
        rope.rotate(s.k + t * kvd, shape.n_kv_heads, cos_sin_.data());
      }
    }
  }
  jobs_.resize(segments.size());
  for (size_t i = 0; i < segments.size(); ++i) {
    const LayerSegment& s = segments[i];
    s.cache->append(layer, s.k, s.v, s.pos, s.n_rows);
    jobs_[i] = AttentionJob{s.q, s.pos, s.n_rows, s.cache->layer_view(layer), s.out};
  }
  if (observer) {
    for (const AttentionJob& j : jobs_) attention(shape, j.q, j.q_pos, j.n_rows, j.kv, j.out, pool, observer, layer);
  } else {
    attention_batch(shape, jobs_, pool);
  }
  for (const LayerSegment& s : segments) s.cache->finish_step(layer, s.tokens_seen);
}

}  // namespace h2o
