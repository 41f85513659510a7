// token_logprob against a deliberately plain reference: log-softmax by the definition and
// the alternatives by sorting the whole vocabulary.
#include "sampling/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "eval/perplexity.h"

namespace h2o {
namespace {

std::vector<float> random_logits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Logprobs, MatchesTheDefinitionAndPerplexity) {
  const std::vector<float> logits = random_logits(1000, 7);
  long double z = 0;
  for (float l : logits) z += std::exp(static_cast<long double>(l));
  for (int32_t t : {0, 17, 999}) {
    const TokenLogprob r = token_logprob(logits, t, 0);
    EXPECT_TRUE(r.scored);
    EXPECT_EQ(r.token, t);
    EXPECT_NEAR(r.logprob, static_cast<double>(logits[static_cast<size_t>(t)] - std::log(z)), 1e-9);
    EXPECT_NEAR(r.logprob, -token_nll(logits, t), 1e-12);  // what `h2o perplexity` reports
    EXPECT_TRUE(r.top.empty());
  }
}

TEST(Logprobs, TopAlternativesAreTheMostProbableInOrder) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> logits = random_logits(257, seed);
    logits[3] = logits[5];  // a tie: the lower id comes first
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
    });
    for (int n : {1, 5, 20}) {
      const int32_t sampled = order[2];  // in the top N whenever N > 2
      const TokenLogprob r = token_logprob(logits, sampled, n);
      ASSERT_EQ(r.top.size(), static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        EXPECT_EQ(r.top[static_cast<size_t>(i)].first, order[static_cast<size_t>(i)]) << "seed " << seed << " n " << n;
        EXPECT_NEAR(r.top[static_cast<size_t>(i)].second, -token_nll(logits, order[static_cast<size_t>(i)]), 1e-12);
        if (i > 0) EXPECT_GE(r.top[static_cast<size_t>(i - 1)].second, r.top[static_cast<size_t>(i)].second);
      }
      const bool listed = std::any_of(r.top.begin(), r.top.end(), [&](const auto& p) { return p.first == sampled; });
      EXPECT_EQ(listed, n > 2);
    }
  }
  // More alternatives than the vocabulary has, and more than the limit.
  const std::vector<float> small = {1.0f, 2.0f, 0.5f};
  EXPECT_EQ(token_logprob(small, 0, 20).top.size(), 3u);
  EXPECT_EQ(token_logprob(random_logits(100, 3), 0, 50).top.size(), static_cast<size_t>(kMaxTopLogprobs));
}

}  // namespace
}  // namespace h2o
