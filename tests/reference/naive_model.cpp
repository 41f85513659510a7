#include "reference/naive_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace h2o::ref {

double NaiveRope::angle(int pos, int pair) const {
  // The fp32 angle the models define (see the header); llama2.c's run.c computes
  // `pos * (1.0f / powf(base, 2i/n_rot))`. At position 450 the fp32 angle is off the
  // exact one by up to ~3e-5 rad, which moves log-probs by ~1e-4 under a tight cache.
  float freq = 1.0f / std::pow(base, static_cast<float>(2 * pair) / static_cast<float>(n_rot));
  if (!factors.empty()) freq /= factors[static_cast<size_t>(pair)];
  if (freq_scale != 1.0f) freq *= freq_scale;
  return static_cast<double>(static_cast<float>(pos) * freq);
}

void NaiveRope::apply(Vec& x, int pos, int head_size) const {
  if (n_rot == 0) return;
  const int half = n_rot / 2;
  for (size_t base_i = 0; base_i < x.size(); base_i += static_cast<size_t>(head_size)) {
    for (int i = 0; i < half; ++i) {
      const double theta = angle(pos, i);
      const double c = std::cos(theta), s = std::sin(theta);
      const size_t ia = base_i + static_cast<size_t>(neox ? i : 2 * i);
      const size_t ib = base_i + static_cast<size_t>(neox ? i + half : 2 * i + 1);
      const double a = x[ia], b = x[ib];
      x[ia] = a * c - b * s;
      x[ib] = a * s + b * c;
    }
  }
}

std::vector<Vec> NaiveModel::logits_with_mask(std::span<const int32_t> tokens, const Visibility& visible) const {
  NaiveKvStore store;
  return step(store, tokens, 0, visible);
}

std::vector<Vec> NaiveModel::logits_causal(std::span<const int32_t> tokens) const {
  return logits_with_mask(tokens, [](int, int, int qpos, int kpos) { return kpos <= qpos; });
}

Vec matvec(const Vec& w, const Vec& x, int rows, int cols, const Vec& b) {
  Vec out(static_cast<size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int c = 0; c < cols; ++c) acc += w[static_cast<size_t>(r) * cols + c] * x[static_cast<size_t>(c)];
    out[static_cast<size_t>(r)] = acc + (b.empty() ? 0.0 : b[static_cast<size_t>(r)]);
  }
  return out;
}

Vec rmsnorm(const Vec& x, const Vec& weight, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * weight[i];
  return out;
}

Vec layernorm(const Vec& x, const Vec& weight, const Vec& bias, double eps) {
  double mean = 0.0;
  for (double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  double var = 0.0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= static_cast<double>(x.size());
  const double inv = 1.0 / std::sqrt(var + eps);
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - mean) * inv * weight[i] + bias[i];
  return out;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

void position_and_store(const NaiveRope& rope, const NaiveKvHooks* hooks, int head_size, int pos, Vec& q, Vec& k,
                        Vec& v) {
  if (!hooks || !hooks->rotation_position) {
    rope.apply(q, pos, head_size);
    rope.apply(k, pos, head_size);
  }
  if (hooks && hooks->store) {
    for (size_t h = 0; h < k.size(); h += static_cast<size_t>(head_size)) hooks->store(&k[h], head_size);
    for (size_t h = 0; h < v.size(); h += static_cast<size_t>(head_size)) hooks->store(&v[h], head_size);
  }
}

Vec attend(const NaiveConfig& cfg, int layer, const std::vector<Vec>& keys, const std::vector<Vec>& values,
           const Vec& q_in, int qpos, int row, int n_rows, const Visibility& visible,
           std::vector<NaiveStepStats>* stats, const NaiveRope& rope, const NaiveKvHooks* hooks) {
  const int hs = cfg.head_size(), G = cfg.group(), n_kv = cfg.n_kv_heads;
  const bool rotate_late = hooks && hooks->rotation_position;
  // Late rotation: each visible key's head slice rotated by its position in that head,
  // written into a copy of the keys (only the slices this row reads).
  std::vector<Vec> rotated;
  if (rotate_late) rotated = keys;
  Vec q = q_in;
  if (rotate_late) {
    for (int kvh = 0; kvh < n_kv; ++kvh) {
      for (int j = 0; j < static_cast<int>(keys.size()); ++j) {
        if (!visible(layer, kvh, qpos, j)) continue;
        Vec slice(keys[static_cast<size_t>(j)].begin() + kvh * hs, keys[static_cast<size_t>(j)].begin() + (kvh + 1) * hs);
        rope.apply(slice, hooks->rotation_position(layer, kvh, j), hs);
        std::copy(slice.begin(), slice.end(), rotated[static_cast<size_t>(j)].begin() + kvh * hs);
      }
    }
    for (int qh = 0; qh < cfg.n_heads; ++qh) {
      Vec slice(q.begin() + qh * hs, q.begin() + (qh + 1) * hs);
      rope.apply(slice, hooks->rotation_position(layer, qh / G, qpos), hs);
      std::copy(slice.begin(), slice.end(), q.begin() + qh * hs);
    }
  }
  const std::vector<Vec>& K = rotate_late ? rotated : keys;
  Vec out(static_cast<size_t>(cfg.q_dim()), 0.0);
  for (int qh = 0; qh < cfg.n_heads; ++qh) {
    const int kvh = qh / G;  // grouped-query attention: G query heads per KV head
    std::vector<int> seen;
    for (int j = 0; j < static_cast<int>(keys.size()); ++j) {
      if (visible(layer, kvh, qpos, j)) seen.push_back(j);
    }
    if (seen.empty()) throw std::runtime_error("naive forward: a query row sees no key");
    Vec logit(seen.size());
    for (size_t s = 0; s < seen.size(); ++s) {
      const Vec& key = K[static_cast<size_t>(seen[s])];
      double dot = 0.0;
      for (int i = 0; i < hs; ++i) dot += q[static_cast<size_t>(qh * hs + i)] * key[static_cast<size_t>(kvh * hs + i)];
      logit[s] = dot / std::sqrt(static_cast<double>(hs));
    }
    const double mx = *std::max_element(logit.begin(), logit.end());
    double sum = 0.0;
    for (double& z : logit) sum += (z = std::exp(z - mx));
    for (size_t s = 0; s < seen.size(); ++s) {
      const double p = logit[s] / sum;
      const Vec& val = values[static_cast<size_t>(seen[s])];
      for (int i = 0; i < hs; ++i) out[static_cast<size_t>(qh * hs + i)] += p * val[static_cast<size_t>(kvh * hs + i)];
      if (stats) {
        // The spec's softmax is fp32, so a probability below fp32's range is zero and
        // such slots tie (broken by age). In double they would differ by 1e-50 and pick
        // another victim (seen under tova: last-row masses ~1e-54), so the policy
        // statistics take each probability at fp32 precision.
        const double pf = static_cast<double>(static_cast<float>(p));
        NaiveStepStats& st = (*stats)[static_cast<size_t>(layer * n_kv + kvh)];
        st.mass[seen[s]] += pf;
        if (row == n_rows - 1) st.last_row[seen[s]] += pf;
      }
    }
  }
  return out;
}

double round_to_half(float x) {
  const double v = x;
  if (v == 0.0 || !std::isfinite(v)) return v;
  // The spacing of halves around v: 2^(e - 10) for |v| in [2^e, 2^(e+1)), e >= -14
  // (below, the subnormals share the spacing 2^-24). v / spacing is exact in double, so
  // nearbyint rounds to nearest even exactly.
  int e = 0;
  std::frexp(v, &e);  // |v| = m 2^e with m in [0.5, 1): the leading bit is 2^(e - 1)
  const double spacing = std::ldexp(1.0, std::max(e - 1, -14) - 10);
  const double r = std::nearbyint(v / spacing) * spacing;
  return std::fabs(r) > 65504.0 ? std::copysign(INFINITY, v) : r;
}

void store_as_q8(double* x, int n) {
  // In fp32, as the spec computes it: the values as stored by a float engine.
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(static_cast<float>(x[i])));
  const double d = round_to_half(amax / 127.0f);
  if (d == 0.0) {
    std::fill(x, x + n, 0.0);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const float q = std::nearbyint(static_cast<float>(x[i]) / static_cast<float>(d));
    x[i] = d * std::clamp(q, -127.0f, 127.0f);
  }
}

}  // namespace h2o::ref
