// XSum summarization under a KV budget, on the H2O authors' HELM requests
// (../shared/data/eval/xsum_0shot.jsonl; their h2o_hf/run_summarization.py runs the same
// file): generate a summary for each request's prompt, cut it at the request's stop
// sequence, and score it against summary_gt with ROUGE-1/2/L (eval/rouge.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/rouge.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace h2o {

struct XsumRequest {
  std::string id;         // 0-based line index among the file's requests
  std::string prompt;     // "article": the whole prompt ("###\nArticle: ...\n\nSummarize ...\n")
  std::string reference;  // "summary_gt"
  int max_tokens = 64;
  float temperature = 0.3f;
  float top_p = 1.0f;
  std::vector<std::string> stop;  // e.g. ["###"]
};

// Reads the JSONL requests. Malformed lines throw h2o::Error "<file>:<line>: <problem>".
std::vector<XsumRequest> load_xsum(const std::string& path);

struct XsumOptions {
  SessionOptions session;            // KV settings; percentages resolve against prompt + max_tokens
  size_t limit = 0;                  // first N requests (0 = all)
  uint64_t seed = 42;                // sampling seed (run_summarization.py's default), per request: seed + index
  std::optional<float> temperature;  // overrides the requests' temperature (0 = greedy)
  bool use_stemmer = true;           // HELM scores XSum with rouge-score's Porter stemming
  std::function<void(size_t, size_t)> progress;
};

struct XsumItemResult {
  std::string id;
  std::string summary;  // generated text cut at the stop sequence, whitespace-stripped
  std::string reference;
  RougeScores rouge;
  int prompt_tokens = 0;    // BOS included
  bool truncated = false;   // the article was shortened to fit the model's context
  std::string stop_reason;  // "stop", or generate()'s "length", "eos", "context"
};

struct XsumSummary {
  size_t n = 0;
  RougeScores mean;  // average precision, recall and F of each measure
  size_t n_truncated = 0;
  size_t kv_bytes_peak = 0;
  double seconds = 0;
};

// If the prompt plus max_tokens exceeds the model's context, the article is cut at a
// word boundary (keeping the final "\n\nSummarize ..." instruction) until it fits.
XsumSummary evaluate_xsum(std::shared_ptr<const Model> model, const std::vector<XsumRequest>& requests,
                          const XsumOptions& opts, std::vector<XsumItemResult>* items = nullptr);

// The prompt shortened as evaluate_xsum does so that encode(prompt, BOS) + max_tokens fits
// in context_length; unchanged if it already fits. Throws h2o::Error if even an empty
// article does not fit.
std::string fit_prompt(const Tokenizer& tok, const std::string& prompt, int max_tokens, int context_length,
                       bool* truncated = nullptr);

}  // namespace h2o
