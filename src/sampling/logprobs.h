// Log-probabilities of tokens from one row of logits, as the OpenAI API reports them: the
// chosen token's log-softmax and the N most probable alternatives. Computed in double from
// the raw logits (before temperature, top-k or top-p), so a prompt token's logprob is
// exactly minus the NLL `h2o perplexity` gives it (eval/perplexity.h token_nll).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace h2o {

inline constexpr int kMaxTopLogprobs = 20;  // OpenAI's limit on alternatives per token

struct TokenLogprob {
  int32_t token = -1;
  bool scored = false;  // false for a sequence's first token: nothing predicts it
  double logprob = 0.0;
  // The most probable tokens with their logprobs, most probable first (ties: lower id).
  std::vector<std::pair<int32_t, double>> top;
};

// log softmax(logits)[token] and the top_n (0..kMaxTopLogprobs) most probable tokens.
// logits: [vocab]; token in [0, vocab).
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top_n);

}  // namespace h2o
