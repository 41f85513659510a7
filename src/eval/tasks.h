// Multiple-choice tasks scored by log-likelihood, the lm-eval-harness way: every choice is
// a (context, continuation) pair; the model's summed log-probability of the continuation
// given the context ranks the choices. acc = argmax of the sum; acc_norm = argmax of the
// sum divided by the choice's length in characters (lm-eval divides by len(choice), the
// choice text without its " " target delimiter).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace h2o {

struct McChoice {
  std::string context;       // text before the continuation (evaluate() prepends the k-shot examples)
  std::string continuation;  // scored text, usually starting with a space
};

struct McItem {
  std::string id;
  std::vector<McChoice> choices;
  int label = 0;  // index of the correct choice
};

struct McTask {
  std::string name;         // copa, piqa, openbookqa, winogrande, rte, mathqa
  std::string source_file;  // the file the items were read from
  std::vector<McItem> items;
};

// Names accepted by load_task().
const std::vector<std::string>& task_names();

// Reads a task from its file in data_dir (../shared/data/eval layout) with
// lm-eval-harness's prompt format. Malformed input (bad JSON, missing fields, wrong
// label values) throws h2o::Error "<file>:<line>: <problem>".
McTask load_task(const std::string& name, const std::string& data_dir);

struct EvalOptions {
  SessionOptions session;                        // KV settings; percentage budgets resolve per choice length
  int num_fewshot = 0;                           // k-shot: examples drawn from the task's own items
  uint64_t fewshot_seed = 1234;                  // fixed seed for the draw (the item itself is never drawn)
  size_t limit = 0;                              // evaluate only the first N items (0 = all)
  std::function<void(size_t, size_t)> progress;  // (items done, items total)
};

struct ItemResult {
  std::string id;
  int label = 0;
  std::vector<double> loglik;      // per choice: sum of log p(continuation tokens | context)
  std::vector<size_t> cont_bytes;  // per choice: continuation length in bytes
  std::vector<size_t> cont_chars;  // per choice: acc_norm's divisor (see choice_length())
  std::vector<int> cont_tokens;    // per choice: continuation length in tokens
  int pred = 0;                    // argmax loglik
  int pred_norm = 0;               // argmax loglik / cont_chars
  bool truncated = false;          // some choice was cut to fit the model's context
};

struct EvalSummary {
  std::string task;
  size_t n = 0;
  double acc = 0, acc_stderr = 0;  // stderr = sqrt(p(1-p)/(n-1)), as lm-eval reports
  double acc_norm = 0, acc_norm_stderr = 0;
  size_t n_truncated = 0;  // items with a choice cut to fit the model's context
  size_t kv_bytes_peak = 0;
  double seconds = 0;
};

EvalSummary evaluate(std::shared_ptr<const Model> model, const McTask& task, const EvalOptions& opts,
                     std::vector<ItemResult>* items = nullptr);

// The k-shot prefix of item `item`: k other items drawn with `seed` (the draw depends only
// on seed, item index and task size, so --limit does not change it), each rendered as its
// correct choice's context + continuation, joined and followed by "\n\n" (lm-eval's
// fewshot_delimiter). Empty for k = 0. Throws h2o::Error if the task has fewer than k + 1 items.
std::string fewshot_prefix(const McTask& task, size_t item, int k, uint64_t seed);

// One scored request as lm-eval builds it: trailing spaces of the context move to the
// continuation, whole = encode(context + continuation), and the continuation's tokens are
// whole[len(encode(context)):] (at least one). tokens = BOS + whole (BOS if the vocabulary
// adds one; else EOS before a context-free continuation, nothing before others), cut from
// the left to max_tokens if longer; the last n_cont tokens are scored (never the first
// token). A continuation that alone does not fit (lm-eval asserts) is scored on its last
// max_tokens - 1 tokens.
struct ScoredRequest {
  std::vector<int32_t> tokens;
  size_t n_cont = 0;
  bool truncated = false;  // tokens were dropped to fit max_tokens
};
ScoredRequest build_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                            size_t max_tokens);

// acc_norm's divisor for a continuation: its length in characters (UTF-8 code points)
// without lm-eval's leading " " target delimiter, at least 1.
size_t choice_length(const std::string& continuation);

}  // namespace h2o
