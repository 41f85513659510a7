#include "attention/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"

namespace h2o {
namespace {

// Per-thread scratch for one KV head's rows: probabilities and visible slot indices.
struct HeadScratch {
  std::vector<float> p;
  std::vector<uint32_t> visible;
  std::vector<int32_t> visible_pos;
  void reserve(size_t n, bool observed) {
    if (p.size() < n) p.resize(n);
    if (visible.size() < n) visible.resize(n);
    if (observed && visible_pos.size() < n) visible_pos.resize(n);
  }
};

// All query heads of KV head `h` over all rows of one job. Writes out[row][qh*hd..] for the
// group's query heads and the statistics of head h only, so jobs x heads run in parallel.
void attend_kv_head(const AttentionShape& cfg, const AttentionJob& job, size_t h, HeadScratch& s,
                    const AttentionObserver* observer, int layer) {
  const size_t hd = static_cast<size_t>(cfg.head_dim);
  const size_t qd = static_cast<size_t>(cfg.q_dim());
  const int group = cfg.group_size();
  const float scale_div = sqrtf(static_cast<float>(cfg.head_dim));
  const KvLayerView& kv = job.kv;
  const size_t n = static_cast<size_t>(kv.n);
  s.reserve(n, observer != nullptr);
  float* p = s.p.data();
  uint32_t* visible = s.visible.data();
  const float* keys = kv.keys + h * kv.cap * hd;
  const float* values = kv.values + h * kv.cap * hd;
  const int32_t* pos = kv.pos + h * kv.cap;
  float* mass = kv.mass ? kv.mass + h * kv.cap : nullptr;
  float* last = kv.last_row_mass ? kv.last_row_mass + h * kv.cap : nullptr;
  for (int g = 0; g < group; ++g) {
    const size_t qh = h * static_cast<size_t>(group) + static_cast<size_t>(g);
    for (int r = 0; r < job.n_rows; ++r) {
      const float* qv = job.q + static_cast<size_t>(r) * qd + qh * hd;
      float* o = job.out + static_cast<size_t>(r) * qd + qh * hd;
      // Visible slots: the causal mask by absolute position.
      size_t m = 0;
      for (size_t j = 0; j < n; ++j) {
        if (pos[j] <= job.q_pos[r]) visible[m++] = static_cast<uint32_t>(j);
      }
      dot_f32_rows(qv, keys, visible, m, cfg.head_dim, p);
      for (size_t j = 0; j < m; ++j) p[j] = p[j] / scale_div;
      softmax(p, static_cast<int>(m));
      if (observer) {
        for (size_t j = 0; j < m; ++j) s.visible_pos[j] = pos[visible[j]];
        (*observer)(AttentionRow{layer, static_cast<int>(qh), static_cast<int>(h), job.q_pos[r], s.visible_pos.data(),
                                 p, static_cast<int>(m)});
      }
      std::memset(o, 0, hd * sizeof(float));
      axpy_f32_rows(p, values, visible, m, cfg.head_dim, o);
      if (mass) {
        for (size_t j = 0; j < m; ++j) mass[visible[j]] += p[j];
      }
      if (last && r == job.n_rows - 1) {
        for (size_t j = 0; j < m; ++j) last[visible[j]] += p[j];
      }
    }
  }
}

}  // namespace

void attention(const AttentionShape& cfg, const float* q, const int32_t* q_pos, int n_rows, const KvLayerView& kv,
               float* out, ThreadPool& pool, const AttentionObserver* observer, int layer) {
  const AttentionJob job{q, q_pos, n_rows, kv, out};
  if (observer) {
    // Observed runs stay on this thread: the observer is not thread-safe.
    HeadScratch s;
    for (size_t h = 0; h < static_cast<size_t>(cfg.n_kv_heads); ++h) attend_kv_head(cfg, job, h, s, observer, layer);
    return;
  }
  attention_batch(cfg, std::span(&job, 1), pool);
}

void attention_batch(const AttentionShape& cfg, std::span<const AttentionJob> jobs, ThreadPool& pool) {
  const size_t heads = static_cast<size_t>(cfg.n_kv_heads);
  size_t work = 0;
  for (const AttentionJob& j : jobs)
    work += static_cast<size_t>(j.n_rows) * static_cast<size_t>(cfg.n_heads) * static_cast<size_t>(j.kv.n) *
            static_cast<size_t>(cfg.head_dim) * 2;
  // One task per (job, KV head): each writes its own outputs and statistics.
  pool.parallel_for(
      jobs.size() * heads,
      [&](size_t begin, size_t end) {
        HeadScratch s;
        for (size_t i = begin; i < end; ++i) attend_kv_head(cfg, jobs[i / heads], i % heads, s, nullptr, 0);
      },
      work);
}

}  // namespace h2o
