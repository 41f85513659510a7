// Rotary position embeddings (RoPE) on query and key vectors.
//
// For pair i < n_rot/2 at position p the angle is  p * inv_freq[i],  with
//   inv_freq[i] = base^(-2i/n_rot) * freq_scale / freq_factor[i]
// (freq_scale = 1/factor of linear scaling; freq_factor: Llama 3.1+'s rope_freqs divisors,
// else 1), computed once per model. Dimensions >= n_rot of a head pass unchanged (partial
// rotary, GPT-NeoX). (a, b) -> (a cos - b sin, a sin + b cos).
#pragma once

#include <span>
#include <vector>

namespace h2o {

// Which dimensions form pair i: NORMAL rotates adjacent values (x[2i], x[2i+1]) as GGUF
// llama and llama2.c do; NEOX rotates (x[i], x[i + n_rot/2]) as GPT-NeoX, Qwen2 and every
// Hugging Face checkpoint do.
enum class RopeStyle { Normal, Neox };

class RopeTable {
 public:
  static constexpr int kMaxRot = 1024;  // rotated dimensions per head at most

  RopeTable() = default;  // no rotary embedding (enabled() is false)
  // n_rot: even, 0 < n_rot <= min(head_dim, kMaxRot). freq_factors: empty or n_rot/2 positive values.
  RopeTable(RopeStyle style, int head_dim, int n_rot, float base, float freq_scale = 1.0f,
            std::span<const float> freq_factors = {});

  bool enabled() const { return n_rot_ > 0; }
  RopeStyle style() const { return style_; }
  int head_dim() const { return head_dim_; }
  int n_rot() const { return n_rot_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }  // [n_rot/2]

  // cos_sin[2i], cos_sin[2i+1] = cos, sin of pair i's angle at `pos`: [n_rot/2][2].
  void angles(int pos, float* cos_sin) const;
  // Rotates n_heads vectors of head_dim values by precomputed angles (from angles()).
  void rotate(float* x, int n_heads, const float* cos_sin) const;
  // Both at once, for one position.
  void rotate(float* x, int n_heads, int pos) const;

 private:
  RopeStyle style_ = RopeStyle::Normal;
  int head_dim_ = 0;
  int n_rot_ = 0;
  std::vector<float> inv_freq_;
};

}  // namespace h2o
