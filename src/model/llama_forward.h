// The LLaMA forward pass over one step of T tokens (T = 1 when decoding, the chunk size
// during prefill): embeddings -> L x (RMSNorm, q/k/v, RoPE, attention over the KV cache,
// output projection, RMSNorm, SwiGLU FFN) -> RMSNorm -> logits.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/attention_observer.h"
#include "common/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace h2o {

class LlamaForward {
 public:
  explicit LlamaForward(const Model& model) : model_(model) {}

  // tokens/positions: [T]. logits: [T][vocab] if all_rows, else [vocab] for the last row.
  // tokens_seen: the sequence length after this step (for the eviction policies).
  void step(const int32_t* tokens, const int32_t* positions, int n_tokens, KvCache& cache, int64_t tokens_seen,
            bool all_rows, float* logits, ThreadPool& pool);

  // Analysis hook: sees every attention row (see attention/attention_observer.h).
  void set_attention_observer(AttentionObserver observer) { observer_ = std::move(observer); }

 private:
  void ensure_scratch(int n_tokens);

  const Model& model_;
  AttentionObserver observer_;
  int scratch_rows_ = 0;
  // Activations, row-major per token.
  std::vector<float> x_;    // [T][dim] residual stream
  std::vector<float> xb_;   // [T][dim] normed input / attention projection output
  std::vector<float> q_;    // [T][q_dim]
  std::vector<float> k_;    // [T][kv_dim]
  std::vector<float> v_;    // [T][kv_dim]
  std::vector<float> att_;  // [T][q_dim] attention output
  std::vector<float> hb_;   // [T][hidden] gate
  std::vector<float> hb2_;  // [T][hidden] up
};

}  // namespace h2o
