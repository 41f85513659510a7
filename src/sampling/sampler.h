// Token sampling from logits: greedy (temperature 0), or temperature with optional
// top-k and top-p (nucleus) filtering, from a seeded generator (same seed, same tokens).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace h2o {

struct SamplerParams {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;

  // Throws h2o::Error naming the bad value.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  int32_t sample(std::span<const float> logits);

 private:
  double next_uniform();  // [0, 1), from xoshiro-style state advanced by splitmix64

  SamplerParams params_;
  uint64_t state_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace h2o
