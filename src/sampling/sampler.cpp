#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace h2o {

void SamplerParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) fail("--temp: must be >= 0, got {}", temperature);
  if (top_k < 0) fail("--top-k: must be >= 0, got {}", top_k);
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) fail("--top-p: must be in (0, 1], got {}", top_p);
}

Sampler::Sampler(const SamplerParams& params) : params_(params), state_(params.seed) { params_.validate(); }

double Sampler::next_uniform() {
  state_ += 0x9E3779B97F4A7C15ull;  // splitmix64 stream
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t argmax(std::span<const float> logits) {
  // Two passes the compiler vectorises (greedy decoding scans a 32k-152k vocabulary per
  // token; one compare-and-reload loop was ~2% of a batched decode step): the maximum in
  // eight explicit lanes (exact in any order), then the first index holding it. The same
  // index as "first strictly greater" in one pass: +0 and -0 compare equal in both, and a
  // NaN never wins (a NaN at 0 leaves every lane NaN: nothing equals it, so 0).
  const size_t n = logits.size();
  if (n == 0) return 0;
  const float* x = logits.data();
  float lane[8];
  for (float& l : lane) l = x[0];
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  }
  float max = lane[0];
  for (size_t j = 1; j < 8; ++j) max = lane[j] > max ? lane[j] : max;
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  for (i = 0; i + 8 <= n; i += 8) {
    bool hit = false;
    for (size_t j = 0; j < 8; ++j) hit |= x[i + j] == max;
    if (hit) break;
  }
  for (; i < n; ++i) {
    if (x[i] == max) return static_cast<int32_t>(i);
  }
  return 0;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature == 0.0f) return argmax(logits);
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i] / params_.temperature, static_cast<int32_t>(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<long>(keep), candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Softmax over the kept candidates (in double: sums of many small terms).
  const double max = candidates_.front().first;
  std::vector<double> prob(keep);
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(static_cast<double>(candidates_[i].first) - max);
  // Nucleus: the smallest prefix whose mass reaches top_p.
  size_t n = keep;
  if (params_.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      cum += prob[i] / sum;
      if (cum >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += prob[i];
  const double r = next_uniform() * total;
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += prob[i];
    if (r < cum) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

}  // namespace h2o
