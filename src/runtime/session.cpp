#include "runtime/session.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/check.h"

namespace h2o {

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& opts)
    : model_(std::move(model)), forward_(*model_) {
  const ModelConfig& c = model_->config();
  const KvResolved kv = resolve_kv(opts.kv, opts.expected_length);
  check_kv_positions(kv, model_->rope().enabled(), c.arch);
  pool_ = std::make_unique<ThreadPool>(opts.threads);
  chunk_ = opts.kv.prefill_chunk;
  // With whole-prompt prefill the largest step is the prompt, unknown until it comes.
  cache_ = std::make_unique<KvCache>(c.attention_shape(), kv, chunk_);
  last_logits_.assign(static_cast<size_t>(c.vocab_size), 0.0f);
}

std::span<const float> Session::feed(std::span<const int32_t> tokens, std::vector<float>* all_logits) {
  const ModelConfig& c = model_->config();
  if (tokens.empty()) fail("nothing to feed: empty token list");
  // A bounded cache holds B slots however long the sequence: it may stream past the trained
  // context (positions past it under `absolute`; ranks below B + T under `cache`).
  if (cache_->settings().budget == 0 &&
      static_cast<size_t>(n_past_) + tokens.size() > static_cast<size_t>(c.context_length))
    fail("sequence of {} tokens would pass the model's context length {}", static_cast<size_t>(n_past_) + tokens.size(),
         c.context_length);
  if (static_cast<size_t>(n_past_) + tokens.size() > static_cast<size_t>(INT32_MAX))
    fail("sequence of {} tokens is too long", static_cast<size_t>(n_past_) + tokens.size());
  const size_t V = static_cast<size_t>(c.vocab_size);
  if (all_logits) all_logits->resize(tokens.size() * V);
  const size_t chunk = chunk_ > 0 ? static_cast<size_t>(chunk_) : tokens.size();
  for (size_t start = 0; start < tokens.size(); start += chunk) {
    const size_t T = std::min(chunk, tokens.size() - start);
    positions_.resize(T);
    for (size_t t = 0; t < T; ++t) positions_[t] = static_cast<int32_t>(static_cast<size_t>(n_past_) + t);
    const bool last_chunk = start + T == tokens.size();
    if (all_logits) {
      float* out = all_logits->data() + start * V;
      forward_.step(tokens.data() + start, positions_.data(), static_cast<int>(T), *cache_,
                    n_past_ + static_cast<int64_t>(T), true, out, *pool_);
      if (last_chunk) std::memcpy(last_logits_.data(), out + (T - 1) * V, V * sizeof(float));
    } else {
      forward_.step(tokens.data() + start, positions_.data(), static_cast<int>(T), *cache_,
                    n_past_ + static_cast<int64_t>(T), false, last_logits_.data(), *pool_);
    }
    n_past_ += static_cast<int>(T);
  }
  return last_logits_;
}

void Session::reset() {
  cache_->clear();
  n_past_ = 0;
}

}  // namespace h2o
