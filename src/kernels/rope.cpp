#include "kernels/rope.h"

#include <cmath>

#include "common/check.h"

namespace h2o {

RopeTable::RopeTable(RopeStyle style, int head_dim, int n_rot, float base, float freq_scale,
                     std::span<const float> freq_factors)
    : style_(style), head_dim_(head_dim), n_rot_(n_rot) {
  if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim || n_rot > kMaxRot)
    fail("RoPE dimension count {} does not fit head dimension {}", n_rot, head_dim);
  if (!(base > 0.0f) || !std::isfinite(base)) fail("RoPE base {} must be positive and finite", base);
  if (!(freq_scale > 0.0f) || !std::isfinite(freq_scale)) fail("RoPE frequency scale {} must be positive", freq_scale);
  const size_t pairs = static_cast<size_t>(n_rot / 2);
  if (!freq_factors.empty() && freq_factors.size() != pairs)
    fail("RoPE frequency factors: {} values for {} pairs", freq_factors.size(), pairs);
  inv_freq_.resize(pairs);
  for (size_t i = 0; i < pairs; ++i) {
    // powf in float as llama2.c's run.c computes it (the stories260K golden is bit-exact).
    float f = 1.0f / powf(base, static_cast<float>(2 * i) / static_cast<float>(n_rot));
    if (!freq_factors.empty()) {
      const float ff = freq_factors[i];
      if (!(ff > 0.0f) || !std::isfinite(ff)) fail("RoPE frequency factor {} of pair {} must be positive", ff, i);
      f /= ff;
    }
    if (freq_scale != 1.0f) f *= freq_scale;
    inv_freq_[i] = f;
  }
}

void RopeTable::angles(int pos, float* cos_sin) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const float angle = static_cast<float>(pos) * inv_freq_[i];
    cos_sin[2 * i] = cosf(angle);
    cos_sin[2 * i + 1] = sinf(angle);
  }
}

void RopeTable::rotate(float* x, int n_heads, const float* cos_sin) const {
  const int half = n_rot_ / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<long>(h) * head_dim_;
    for (int i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const int a = style_ == RopeStyle::Normal ? 2 * i : i;
      const int b = style_ == RopeStyle::Normal ? 2 * i + 1 : i + half;
      const float v0 = v[a], v1 = v[b];
      v[a] = v0 * c - v1 * s;
      v[b] = v0 * s + v1 * c;
    }
  }
}

void RopeTable::rotate(float* x, int n_heads, int pos) const {
  float cs[kMaxRot];
  angles(pos, cs);
  rotate(x, n_heads, cs);
}

}  // namespace h2o
