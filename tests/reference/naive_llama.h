// Deliberately naive, independent reference implementations that the engine is held to
// (shared/spec/kv-policies.md). Nothing here uses the engine's loader, kernels or KV
// cache: the checkpoint is read directly and the arithmetic is double, save two
// quantities that the model and the spec define in fp32 (RoPE angles; the softmax
// probabilities the policies rank by), explained in naive_llama.cpp. The code is
// written to be obviously correct, not fast: plain loops, std::set for kept tokens,
// one eviction at a time.
//
// Two drivers share the model arithmetic (reference/naive_model.h):
//   - NaiveModel::logits_with_mask: every token at once under a static visibility
//     predicate (causal, sliding window, ...).
//   - NaiveKvReference: the spec's bounded cache as "full attention over all tokens
//     with a kept mask per (layer, KV head)", stepped chunk by chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "reference/naive_model.h"

namespace h2o::ref {

// LLaMA-family models: llama2.c checkpoints and GGUF files of architecture `llama` (with
// Llama 3's rope_freqs and linear scaling) and `qwen2` (q/k/v biases, NEOX RoPE), read
// directly (reference/naive_gguf.h for GGUF).
class NaiveLlama : public NaiveModel {
 public:
  // A llama2.c legacy checkpoint or a GGUF file (by its magic). Throws std::runtime_error
  // if the file is missing, truncated or longer than its header says.
  explicit NaiveLlama(const std::string& path);

  const NaiveConfig& config() const override { return cfg_; }
  std::vector<Vec> step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                        const Visibility& visible, std::vector<NaiveStepStats>* stats = nullptr,
                        const NaiveKvHooks* hooks = nullptr) const override;

 private:
  struct Layer {
    Vec rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3;  // w1 gate, w2 down, w3 up
    Vec bq, bk, bv;                                    // empty when absent
  };
  void read_llama2c(const std::string& path);
  void read_gguf(const std::string& path);

  NaiveConfig cfg_;
  NaiveRope rope_;
  double eps_ = 1e-5;
  Vec token_embedding_;  // [vocab][dim]
  std::vector<Layer> layers_;
  Vec rms_final_;
  Vec wcls_;  // [vocab][dim]; a copy of the embedding when shared
};

// log softmax of one logits row, in double.
Vec log_softmax(std::span<const double> logits);
Vec log_softmax(std::span<const float> logits);

// The spec's policies, resolved to counts (independent of the engine's KvResolved).
struct NaivePolicy {
  std::string name = "full";  // full, window, sink, h2o, tova, random
  int budget = 0;             // B (ignored by full)
  int recent = 0;             // R (h2o, random)
  int sinks = 0;              // S (sink)
  uint64_t seed = 0;          // random
  std::string positions = "absolute";  // absolute, cache
  std::string type = "f32";            // f32, f16, q8
};

// One eviction decision of one step for one (layer, KV head).
struct NaiveEviction {
  int64_t tokens_seen = 0;  // sequence length after the step
  int layer = 0;
  int kv_head = 0;
  std::vector<int> victims;  // positions, in removal order
  // Smallest removal key among the unprotected survivors minus the largest key among
  // the victims: how close the decision came to a different victim (+inf if no
  // unprotected slot survived). A tiny margin under h2o/tova means a float engine may
  // legitimately pick another victim.
  double margin = std::numeric_limits<double>::infinity();
};

class NaiveKvReference {
 public:
  NaiveKvReference(const NaiveModel& model, NaivePolicy policy);

  // One step over `tokens` (positions tokens_seen()..): attention over the kept tokens
  // plus the step's causal part, score update, then eviction down to the budget.
  // Returns the log-probabilities of every row ([T][vocab]).
  std::vector<Vec> step(std::span<const int32_t> tokens);
  // Runs `tokens` in steps of the given sizes (their sum must be tokens.size()).
  std::vector<Vec> run(std::span<const int32_t> tokens, const std::vector<int>& step_sizes);

  int64_t tokens_seen() const { return next_pos_; }
  const NaivePolicy& policy() const { return policy_; }
  const std::set<int>& kept(int layer, int kv_head) const;
  double score(int layer, int kv_head, int pos) const;
  const std::vector<NaiveEviction>& evictions() const { return evictions_; }
  // The smallest margin over all evictions so far (+inf if none).
  double min_margin() const;

  // The removal key of `pos` in the last step (h2o: accumulated score; tova: last-row
  // mass; window/sink: the position; random: the draw).
  double step_key(int layer, int kv_head, int pos) const;
  // Right after a step: takes `other` as the kept set of (layer, kv_head) if it differs
  // from ours only by a near-tie, i.e. it is the same size, keeps the protected
  // positions, holds nothing that was not a candidate in this step, and every key it
  // kept instead of ours is within rel_tol (relative) of the keys it removed. Returns ""
  // if `other` equals our set or was adopted, else why not. This lets a float engine
  // that broke a near-tie the other way be followed for the rest of the sequence
  // instead of being compared against a different cache.
  std::string adopt_near_tie(int layer, int kv_head, const std::set<int>& other, double rel_tol);

 private:
  size_t index(int layer, int kv_head) const;
  void evict(int layer, int kv_head, const NaiveStepStats& stats);
  NaiveKvHooks hooks() const;
  std::set<int> protected_positions(const std::set<int>& kept) const;
  double removal_key(int layer, int kv_head, int pos, const NaiveStepStats& stats) const;

  const NaiveModel& model_;
  NaivePolicy policy_;
  NaiveKvStore store_;
  int next_pos_ = 0;
  std::vector<std::set<int>> kept_;                // [layer * n_kv + head]: kept positions
  std::vector<std::map<int, double>> score_;       // accumulated score by position
  std::vector<NaiveEviction> evictions_;
  std::vector<NaiveStepStats> last_stats_;  // the last step's statistics, for step_key()
  std::vector<std::map<int, int>> rank_;    // `cache` positions: this step's rank of each kept position
};

// Step sizes for feeding n tokens in chunks of `chunk` (0 = everything in one step).
std::vector<int> chunk_steps(int n, int chunk);

}  // namespace h2o::ref
