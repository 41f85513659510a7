// Text generation on one session: encode the prompt (BOS first), prefill it, then sample
// until EOS, the token limit, or the model's context length (a bounded cache under `cache`
// positions goes on past it: see streams_past_context()).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/session.h"
#include "sampling/sampler.h"

namespace h2o {

struct GenerateOptions {
  std::string prompt;
  int n_predict = 128;      // tokens to generate (stops earlier at EOS or the context end)
  bool ignore_eos = false;  // keep generating past EOS/BOS (benchmarks, memory traces)
  SamplerParams sampling;
  SessionOptions session;  // KV policy and threads; expected_length is filled in
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;  // BOS included
  std::vector<int32_t> tokens;         // generated
  std::string prompt_text;             // the prompt as decoded from its tokens
  std::string text;                    // the continuation
  std::string stop_reason;             // "length", "eos" or "context"
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // from the first to the last generated token
  size_t kv_bytes = 0;          // at the end
  size_t kv_bytes_peak = 0;
  std::vector<size_t> kv_bytes_trace;  // after each generated token
  KvResolved kv;
};

// `on_text` receives each piece of text as it is produced (the prompt's first). Throws
// h2o::Error for bad settings or a prompt longer than the context.
GenerateResult generate(const std::shared_ptr<const Model>& model, const GenerateOptions& opts,
                        const std::function<void(std::string_view)>& on_text = {});

}  // namespace h2o
