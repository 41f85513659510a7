// The LLaMA forward pass over one step of T tokens (T = 1 when decoding, the chunk size
// during prefill): embeddings -> L x (RMSNorm, q/k/v, RoPE, attention over the KV cache,
// output projection, RMSNorm, SwiGLU FFN) -> RMSNorm -> logits.
//
// step_batch() runs several sequences' steps as one: their rows are stacked so every
// weight matrix is read once for all of them ([sum T][dim] activations), while each
// sequence attends over its own KV cache. A row's result does not depend on what else is
// in the batch (matmul computes every row the same way for any row count).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/layer_step.h"
#include "attention/attention_observer.h"
#include "common/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace h2o {

// One sequence's part of a batched step.
struct StepSegment {
  const int32_t* tokens = nullptr;     // [n_tokens]
  const int32_t* positions = nullptr;  // [n_tokens] absolute positions
  int n_tokens = 0;
  KvCache* cache = nullptr;  // this sequence's cache
  int64_t tokens_seen = 0;   // sequence length after this step (for eviction)
  bool all_rows = false;     // logits for every row, else for the last row only
  float* logits = nullptr;   // [n_tokens or 1][vocab]; null: no logits wanted
};

class LlamaForward {
 public:
  explicit LlamaForward(const Model& model) : model_(model) {}

  // tokens/positions: [T]. logits: [T][vocab] if all_rows, else [vocab] for the last row.
  // tokens_seen: the sequence length after this step (for the eviction policies).
  void step(const int32_t* tokens, const int32_t* positions, int n_tokens, KvCache& cache, int64_t tokens_seen,
            bool all_rows, float* logits, ThreadPool& pool);
  // The steps of several sequences (distinct caches) in one pass.
  void step_batch(std::span<const StepSegment> segments, ThreadPool& pool);

  // Analysis hook: sees every attention row (see attention/attention_observer.h).
  void set_attention_observer(AttentionObserver observer) { observer_ = std::move(observer); }

 private:
  void ensure_scratch(int n_tokens);

  const Model& model_;
  AttentionObserver observer_;
  int scratch_rows_ = 0;
  // Activations, row-major per token.
  std::vector<float> x_;               // [T][dim] residual stream
  std::vector<float> xb_;              // [T][dim] normed input / attention projection output
  std::vector<float> q_;               // [T][q_dim]
  std::vector<float> k_;               // [T][kv_dim]
  std::vector<float> v_;               // [T][kv_dim]
  std::vector<float> att_;             // [T][q_dim] attention output
  std::vector<float> hb_;              // [T][hidden] gate
  std::vector<float> hb2_;             // [T][hidden] up
  std::vector<int32_t> pos_;           // [T] positions of the stacked rows
  std::vector<float> cos_sin_;         // [n_rot/2][2] RoPE angles of one row
  std::vector<size_t> seg_first_row_;  // [segments] first stacked row of each segment
  std::vector<LayerSegment> layer_segs_;  // [segments] one layer's attention work
  LayerAttention layer_attention_;
  std::vector<size_t> logit_rows_;     // rows whose logits are wanted
  std::vector<float> logits_;          // [rows wanted][vocab] when gathered
};

}  // namespace h2o
