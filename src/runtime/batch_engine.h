// Continuous batching: many sequences advance together, one forward pass per step.
//
// Every step gathers one token from each decoding sequence and one prefill chunk (its
// KvSettings::prefill_chunk; without one, the whole prompt for a bounded policy, whose
// step boundaries are part of its semantics, and max_step_tokens for `full`, where they
// change nothing) from as many prefilling sequences as fit the step's token limit, runs them through
// Forward::step_batch (the weights are read once per step for all of them; attention runs per sequence over its
// own cache), then samples the next token of every sequence whose prompt is done. Each sequence keeps its own KV cache,
// policy state, positions and sampler, so its tokens are exactly those it would get alone (the matmul kernels compute
// each row the same way for any row count). Sequences join (add) and leave (finish, cancel) between steps; a finished
// or cancelled sequence's KV cache is freed at once.
//
// Single-threaded: one thread calls add/cancel/step (batch_scheduler.h wraps it for many).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "kv/kv_config.h"
#include "model/forward.h"
#include "model/model.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace h2o {

struct SequenceRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included; 1 <= size <= context length
  int max_tokens = 128;         // tokens to generate (>= 0)
  bool ignore_eos = false;      // keep generating past EOS/BOS
  SamplerParams sampling;
  KvSettings kv;  // policy, budget (percentages resolve against prompt + max_tokens)
  // Logprobs: -1 none; 0..kMaxTopLogprobs: each sampled token's logprob with that many
  // alternatives. prompt_logprobs: also every prompt token's (the prompt is then prefilled
  // with logits for all its rows).
  int logprobs = -1;
  bool prompt_logprobs = false;
  // The sequence length percentage budgets resolve against; 0: prompt + max_tokens. A
  // scoring request (echo) sets its prompt's length: the share of what it scores, as
  // `h2o eval` and `h2o perplexity` resolve it, whatever it generates after.
  int budget_base = 0;
};

// What one step produced for one sequence.
struct SequenceEvent {
  uint64_t id = 0;
  int32_t token = -1;        // the sampled token, or -1 when the event only finishes the sequence
  bool finished = false;     // the sequence is done and has been removed from the engine
  std::string stop_reason;   // when finished: "length", "eos" or "context" (not under streams_past_context())
  int n_prompt = 0;          // the sequence's prompt tokens
  int n_generated = 0;       // tokens sampled so far, this one included
  size_t kv_bytes = 0;       // the sequence's KV cache after this step (freed right after a final event)
  size_t kv_bytes_peak = 0;  // its largest so far
  // With SequenceRequest::prompt_logprobs, on the sequence's first event: one entry per
  // prompt token (the first unscored), from the same logits the prefill computed.
  std::vector<TokenLogprob> prompt_logprobs;
  // With SequenceRequest::logprobs >= 0, for `token`: from the logits it was sampled from
  // (on an "eos" event, for the end-of-generation token sampled, which has no `token`).
  std::optional<TokenLogprob> logprob;

  // An event that only ends a sequence (cancelled, an error).
  static SequenceEvent end(uint64_t id, std::string reason) {
    SequenceEvent e;
    e.id = id;
    e.finished = true;
    e.stop_reason = std::move(reason);
    return e;
  }
};

struct BatchOptions {
  int threads = 1;
  // Jobs estimated below this many multiply-adds run on one thread (ThreadPool); tests set
  // 0 so that a tiny model takes every parallel path too.
  size_t min_parallel_work = ThreadPool::kMinParallelWork;
  int max_sequences = 16;     // sequences in flight at once (add() refuses more)
  int max_step_tokens = 512;  // prefill tokens per step beyond the decoding rows (at least one chunk runs)
};

struct BatchStats {
  int sequences = 0;  // in the engine (prefilling + decoding)
  int decoding = 0;
  size_t kv_bytes = 0;          // sum of the live sequences' caches
  size_t kv_bytes_in_step = 0;  // that sum during the last step's forward pass (before frees and shrinks)
  uint64_t steps = 0;
  uint64_t prompt_tokens = 0;     // prefilled so far
  uint64_t generated_tokens = 0;  // sampled so far
};

// Checks a request against a model without running it (the checks add() makes): prompt
// non-empty, within the context and the vocabulary; max_tokens >= 0; sampling and KV
// settings valid. Returns the KV settings resolved for it. Throws h2o::Error with a
// one-line message.
KvResolved validate_request(const Model& model, const SequenceRequest& req);

class BatchEngine {
 public:
  BatchEngine(std::shared_ptr<const Model> model, const BatchOptions& opts);
  ~BatchEngine();
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  // Validates the request (KV settings, sampling, prompt length against the context,
  // token ids) and queues it for the next step. Throws h2o::Error with a one-line message
  // if the request is invalid or max_sequences are in flight. Returns the sequence's id.
  uint64_t add(SequenceRequest req);
  // Removes a sequence now and frees its KV cache. Unknown ids are ignored.
  void cancel(uint64_t id);

  bool empty() const { return seqs_.empty(); }
  bool full() const { return static_cast<int>(seqs_.size()) >= opts_.max_sequences; }
  // Runs one forward step over every sequence in the engine and returns, in sequence
  // order, the token each one sampled and which finished. Empty if there is nothing to do.
  std::vector<SequenceEvent> step();

  BatchStats stats() const;
  const Model& model() const { return *model_; }
  const BatchOptions& options() const { return opts_; }
  // KV bytes and the resolved settings of a live sequence (0 / throws if unknown).
  size_t kv_bytes(uint64_t id) const;
  size_t kv_bytes_peak(uint64_t id) const;
  KvResolved kv_settings(uint64_t id) const;

 private:
  struct Sequence;
  Sequence* find(uint64_t id) const;

  std::shared_ptr<const Model> model_;
  BatchOptions opts_;
  std::unique_ptr<ThreadPool> pool_;
  Forward forward_;
  std::vector<std::unique_ptr<Sequence>> seqs_;  // in arrival order
  uint64_t next_id_ = 1;
  uint64_t steps_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0;
  size_t kv_bytes_in_step_ = 0;
  std::vector<float> logits_;     // [rows that need logits][vocab]
  std::vector<int32_t> sampled_;  // [rows of the step] the token drawn from each, -1 if none
};

}  // namespace h2o
