#include "attention/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"

namespace h2o {

void attention(const ModelConfig& cfg, const float* q, const int32_t* q_pos, int n_rows, const KvLayerView& kv,
               float* out, ThreadPool& pool, const AttentionObserver* observer, int layer) {
  const size_t hd = static_cast<size_t>(cfg.head_dim);
  const size_t qd = static_cast<size_t>(cfg.q_dim());
  const int group = cfg.group_size();
  const float scale_div = sqrtf(static_cast<float>(cfg.head_dim));
  const size_t n = static_cast<size_t>(kv.n);

  // One task per KV head: its statistics are written by that task only.
  pool.parallel_for(static_cast<size_t>(cfg.n_kv_heads), [&](size_t h_begin, size_t h_end) {
    std::vector<float> p(n);
    std::vector<uint32_t> visible(n);
    std::vector<int32_t> visible_pos(observer ? n : 0);
    for (size_t h = h_begin; h < h_end; ++h) {
      const float* keys = kv.keys + h * kv.cap * hd;
      const float* values = kv.values + h * kv.cap * hd;
      const int32_t* pos = kv.pos + h * kv.cap;
      float* mass = kv.mass ? kv.mass + h * kv.cap : nullptr;
      float* last = kv.last_row_mass ? kv.last_row_mass + h * kv.cap : nullptr;
      for (int g = 0; g < group; ++g) {
        const size_t qh = h * static_cast<size_t>(group) + static_cast<size_t>(g);
        for (int r = 0; r < n_rows; ++r) {
          const float* qv = q + static_cast<size_t>(r) * qd + qh * hd;
          float* o = out + static_cast<size_t>(r) * qd + qh * hd;
          // Visible slots: the causal mask by absolute position.
          size_t m = 0;
          for (size_t s = 0; s < n; ++s) {
            if (pos[s] <= q_pos[r]) visible[m++] = static_cast<uint32_t>(s);
          }
          for (size_t j = 0; j < m; ++j) {
            const float* kr = keys + visible[j] * hd;
            p[j] = dot_f32(qv, kr, cfg.head_dim) / scale_div;
          }
          softmax(p.data(), static_cast<int>(m));
          if (observer) {
            for (size_t j = 0; j < m; ++j) visible_pos[j] = pos[visible[j]];
            (*observer)(AttentionRow{layer, static_cast<int>(qh), static_cast<int>(h), q_pos[r], visible_pos.data(),
                                     p.data(), static_cast<int>(m)});
          }
          std::memset(o, 0, hd * sizeof(float));
          for (size_t j = 0; j < m; ++j) {
            const float* vr = values + visible[j] * hd;
            const float a = p[j];
            for (size_t i = 0; i < hd; ++i) o[i] += a * vr[i];
            if (mass) mass[visible[j]] += a;
            if (last && r == n_rows - 1) last[visible[j]] += a;
          }
        }
      }
    }
  }, observer ? 0 : static_cast<size_t>(n_rows) * static_cast<size_t>(cfg.n_heads) * n * hd * 2);
}

}  // namespace h2o
