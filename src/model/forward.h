// The forward pass over one step of T tokens (T = 1 when decoding, the chunk size during
// prefill), for every architecture: embeddings -> L x the architecture's block -> final
// norm -> logits. The driver knows no architecture: it stacks the step's sequences,
// looks up embeddings (token rows; learned positions and an input projection when the
// model has them), runs each layer's block (model/architecture.h), owns the KV contract
// that blocks reach through LayerContext::attend (positions -> append -> attention ->
// finish_step, attention/layer_step.h), and gathers logits for the rows that want them.
//
// step_batch() runs several sequences' steps as one: their rows are stacked so every
// weight matrix is read once for all of them ([sum T][dim] activations), while each
// sequence attends over its own KV cache. A row's result does not depend on what else is
// in the batch (matmul computes every row the same way for any row count).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/attention_observer.h"
#include "attention/layer_step.h"
#include "common/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/architecture.h"
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

class Forward {
 public:
  explicit Forward(const Model& model) : model_(model) {}

  // tokens/positions: [T]. logits: [T][vocab] if all_rows, else [vocab] for the last row.
  // tokens_seen: the sequence length after this step (for the eviction policies).
  void step(const int32_t* tokens, const int32_t* positions, int n_tokens, KvCache& cache, int64_t tokens_seen,
            bool all_rows, float* logits, ThreadPool& pool);
  // The steps of several sequences (distinct caches) in one pass.
  void step_batch(std::span<const StepSegment> segments, ThreadPool& pool);

  // Analysis hook: sees every attention row (see attention/attention_observer.h).
  void set_attention_observer(AttentionObserver observer) { observer_ = std::move(observer); }

 private:
  friend class LayerContext;
  void ensure_scratch(int n_tokens);
  void embed(std::span<const StepSegment> segments, ThreadPool& pool);
  // LayerContext::attend: the KV contract of one layer over the step's segments.
  void attend(int layer, float* q, float* k, const float* v, float* out, ThreadPool& pool);
  void gather_logits(std::span<const StepSegment> segments, ThreadPool& pool);

  const Model& model_;
  AttentionObserver observer_;
  int scratch_rows_ = 0;
  std::vector<float> x_;  // [T][dim] residual stream
  ForwardScratch scratch_;
  std::vector<float> embd_;            // [T][embed_dim] token rows before the input projection
  std::vector<int32_t> pos_;           // [T] positions of the stacked rows
  std::span<const StepSegment> segments_;  // the step being run
  std::vector<size_t> seg_first_row_;  // [segments] first stacked row of each segment
  std::vector<LayerSegment> layer_segs_;  // [segments] one layer's attention work
  LayerAttention layer_attention_;
  std::vector<size_t> logit_rows_;  // rows whose logits are wanted
  std::vector<float> head_in_;      // [rows wanted][embed_dim] input of the output matrix
  std::vector<float> logits_;       // [rows wanted][vocab] when gathered
};

}  // namespace h2o
