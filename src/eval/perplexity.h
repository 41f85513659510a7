// Perplexity under a KV budget: the text's tokens are scored in consecutive windows of
// `ctx` tokens, each starting from an empty cache with BOS (or, for vocabularies that add
// none, the token before the window); every later token is predicted from the logits of
// the token before it. A bounded policy may stream a window
// longer than the model's trained context (its cache still holds B slots); per-segment
// perplexity then shows whether quality holds along the stream.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "runtime/session.h"

namespace h2o {

struct PerplexityOptions {
  int ctx = 0;                   // window length including BOS; 0 = the model's context length
                                 // (longer than it only under a bounded policy)
  int segment = 0;               // > 0: also perplexity per `segment` scored tokens of a window
  SessionOptions session;        // KV policy (percentages are of the window length ctx)
  // Called after every window with (tokens scored so far, total tokens to score).
  std::function<void(size_t, size_t)> progress;
};

// Scored tokens [first, first + length) of every window (offset 0 predicts the token after
// BOS), pooled over the windows.
struct PerplexitySegment {
  size_t first = 0;
  size_t n = 0;  // tokens scored in it, over all windows
  double mean_nll = 0.0;
  double ppl = 0.0;
};

struct PerplexityResult {
  size_t n_tokens = 0;           // tokens scored
  size_t n_windows = 0;
  double mean_nll = 0.0;         // nats per token
  double ppl = 0.0;
  size_t kv_bytes_peak = 0;
  double seconds = 0.0;
  std::vector<double> nll;       // per scored token, in order
  std::vector<PerplexitySegment> segments;  // when PerplexityOptions::segment > 0
  KvResolved kv;                 // as resolved for a full window
};

// Throws h2o::Error if ctx < 2, beyond the model's context under `full`, or the text is empty.
PerplexityResult perplexity(const std::shared_ptr<const Model>& model, std::span<const int32_t> text_tokens,
                            const PerplexityOptions& opts);

// -log softmax(logits)[target], computed in double.
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace h2o
