#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>

namespace h2o {

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top_n) {
  // log Z = max + log sum exp(l - max), in double (the same sum token_nll forms).
  double max = logits[0];
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  const double log_z = max + std::log(sum);

  TokenLogprob r;
  r.token = token;
  r.scored = true;
  r.logprob = static_cast<double>(logits[static_cast<size_t>(token)]) - log_z;
  const size_t n = std::min(static_cast<size_t>(std::clamp(top_n, 0, kMaxTopLogprobs)), logits.size());
  if (n == 0) return r;
  // One pass keeping the n best (n <= 20): cheaper than sorting a vocabulary per token.
  const auto better = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::vector<int32_t> best;
  best.reserve(n + 1);
  for (size_t i = 0; i < logits.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (best.size() == n && !better(id, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), id, better), id);
    if (best.size() > n) best.pop_back();
  }
  r.top.reserve(n);
  for (int32_t id : best) r.top.emplace_back(id, static_cast<double>(logits[static_cast<size_t>(id)]) - log_z);
  return r;
}

}  // namespace h2o
