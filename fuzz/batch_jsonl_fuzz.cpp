// libFuzzer target for `h2o batch` prompt files (runtime/batch_input): any bytes, read as
// JSONL and as plain lines, must give one PromptSpec per non-blank line, each either
// runnable settings or an error message -- never an exception, a crash or UB from a
// wrapped number. Settings without an error must pass the sampler's and the KV config's
// own validation or fail it with h2o::Error.
#include "common/error.h"
#include "kv/kv_config.h"
#include "runtime/batch_input.h"

namespace {

size_t non_blank_lines(std::string_view text) {
  size_t n = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) ++n;
    start = end + 1;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  h2o::PromptSpec defaults;
  defaults.n_predict = 16;
  defaults.kv.policy = "h2o";
  defaults.kv.budget = h2o::BudgetSpec::parse("20%", "--kv-budget");
  const size_t lines = non_blank_lines(text);
  for (const bool jsonl : {true, false}) {
    const std::vector<h2o::PromptSpec> specs = h2o::parse_prompt_file(text, jsonl, defaults);
    if (specs.size() != lines) __builtin_trap();
    for (const h2o::PromptSpec& p : specs) {
      if (!jsonl && !p.error.empty()) __builtin_trap();
      if (!p.error.empty()) continue;
      if (p.n_predict < 0 || p.sampling.top_k < 0 || p.kv.sinks < 0 || p.kv.prefill_chunk < 0) __builtin_trap();
      if (p.kv.policy == "full" && p.kv.budget) __builtin_trap();  // refused like the server
      try {
        p.sampling.validate();
        (void)h2o::resolve_kv(p.kv, 64);
      } catch (const h2o::Error&) {
      }
    }
  }
  return 0;
}
