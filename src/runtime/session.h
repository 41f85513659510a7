// One sequence being processed: the model, its own KV cache (governed by a policy) and
// the forward pass's scratch. Feed tokens, read logits; sample with sampling/sampler.h.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/thread_pool.h"
#include "kv/kv_cache.h"
#include "kv/kv_config.h"
#include "model/forward.h"
#include "model/model.h"

namespace h2o {

struct SessionOptions {
  KvSettings kv;  // policy, budget, recent, sinks, prefill chunk
  int threads = 1;
  int expected_length = 0;  // tokens the sequence will reach, for percentage budgets (0 = unknown)
};

class Session {
 public:
  // Throws h2o::Error for invalid KV settings (also `cache` positions on a model without
  // rotary embeddings).
  Session(std::shared_ptr<const Model> model, const SessionOptions& opts);

  // Runs `tokens` through the model at positions n_past().., in steps of the prefill
  // chunk. Returns the logits after the last token ([vocab]). If all_logits is given it
  // receives [tokens.size()][vocab]: the logits after every token. Throws h2o::Error if
  // a `full` cache's sequence would pass the model's context length (a bounded cache may
  // stream past it).
  std::span<const float> feed(std::span<const int32_t> tokens, std::vector<float>* all_logits = nullptr);

  int n_past() const { return n_past_; }
  int context_length() const { return model_->config().context_length; }
  const Model& model() const { return *model_; }
  const KvResolved& kv() const { return cache_->settings(); }
  const KvCache& kv_cache() const { return *cache_; }
  size_t kv_bytes() const { return cache_->bytes(); }
  size_t kv_bytes_peak() const { return cache_->peak_bytes(); }
  std::span<const float> last_logits() const { return last_logits_; }

  // Analysis hook: every attention row of later steps is reported (single-threaded).
  void set_attention_observer(AttentionObserver observer) { forward_.set_attention_observer(std::move(observer)); }

  // Starts a new sequence (keeps allocations).
  void reset();

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvCache> cache_;
  Forward forward_;
  int chunk_ = 0;
  int n_past_ = 0;
  std::vector<float> last_logits_;
  std::vector<int32_t> positions_;
};

}  // namespace h2o
