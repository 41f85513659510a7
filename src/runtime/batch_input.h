// The prompt file of `h2o batch`: one prompt per line, or JSONL whose objects may set
//   {"prompt": "...", "id": any, "n_predict"|"max_tokens": N, "temperature"|"temp": T,
//    "top_k": K, "top_p": P, "seed": S, "ignore_eos": bool, "kv_policy": "h2o",
//    "kv_budget": 64 | "20%", "kv_recent": ..., "kv_sinks": N, "prefill_chunk": N,
//    "kv_type": "f32" | "f16" | "q8", "kv_positions": "absolute" | "cache"}
// over the command line's settings. A line that cannot run gets an error of its own (the
// other lines still run); a field of the wrong type or out of its type's range is such an
// error, never a wrapped or truncated value. Pure functions: the fuzzer runs them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_config.h"
#include "sampling/sampler.h"

namespace h2o {

struct PromptSpec {
  std::string prompt;
  nlohmann::json id;  // echoed back (null when absent)
  int n_predict = 0;
  bool ignore_eos = false;
  SamplerParams sampling;
  KvSettings kv;
  std::string error;  // set when the line cannot run
};

inline constexpr int kMaxPromptLineDepth = 32;  // nesting of arrays/objects in a JSONL line

// One JSONL line over `defaults`. Never throws for bad input: the problem goes to `error`.
PromptSpec parse_prompt_line(std::string_view line, const PromptSpec& defaults);

// Every prompt of a file's text (blank lines skipped, CRLF accepted), plain or JSONL.
std::vector<PromptSpec> parse_prompt_file(std::string_view text, bool jsonl, const PromptSpec& defaults);

}  // namespace h2o
