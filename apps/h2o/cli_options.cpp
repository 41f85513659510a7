#include "cli_options.h"

#include <charconv>
#include <limits>
#include <thread>

#include "common/check.h"

namespace h2o::cli {

void ModelFlags::add(CLI::App& cmd) {
  cmd.add_option("-m,--model", model, "Model: a GGUF file, a Hugging Face directory (config.json, safetensors, tokenizer.json), or a llama2.c checkpoint (.bin) with --tokenizer")->required();
  cmd.add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin (for llama2.c checkpoints)");
}

std::shared_ptr<const Model> ModelFlags::load() const { return Model::load({model, tokenizer}); }

namespace {

// A validator from one of kv_config's parsers: its message without the flag name, which
// CLI11 puts in front.
template <class Parse>
CLI::Validator parser_validator(Parse parse, const std::string& description) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        try {
          parse(value);
          return {};
        } catch (const Error& e) {
          const std::string msg = e.what();
          const size_t colon = msg.find(": ");
          return colon == std::string::npos ? msg : msg.substr(colon + 2);
        }
      },
      description);
}

}  // namespace

CLI::Validator kv_type_validator() {
  return parser_validator([](const std::string& v) { return parse_kv_type(v); }, "f32|f16|q8");
}

CLI::Validator kv_positions_validator() {
  return parser_validator([](const std::string& v) { return parse_kv_positions(v); }, "absolute|cache");
}

void KvFlags::add(CLI::App& cmd) {
  cmd.add_option("--kv-policy", policy, "KV eviction policy: full, window, sink, h2o, tova, random")
      ->capture_default_str();
  cmd.add_option("--kv-budget", budget, "KV slots per (layer, KV head): N tokens or P% of the sequence length");
  cmd.add_option("--kv-recent", recent, "Recent slots kept by h2o/random: N or P% (default: half the budget)");
  cmd.add_option("--kv-sinks", sinks, "Attention-sink slots kept by the sink policy")->capture_default_str();
  cmd.add_option("--prefill-chunk", prefill_chunk, "Prompt tokens per forward step (default: the whole prompt)");
  cmd.add_option("--kv-seed", seed, "Seed of the random policy")->check(unsigned_integer())->capture_default_str();
  cmd.add_option("--kv-type", type, "KV storage: f32, f16 (IEEE half) or q8 (int8 + one fp16 scale per vector)")
      ->check(kv_type_validator())
      ->capture_default_str();
  cmd.add_option("--kv-positions", positions,
                 "RoPE positions: absolute (the paper's), or cache (re-indexed by rank in the kept set, never above "
                 "budget + step: streams past the trained context)")
      ->check(kv_positions_validator())
      ->capture_default_str();
}

KvSettings KvFlags::settings() const {
  KvSettings s;
  s.policy = policy;
  // As the server answers a request with kv_budget under policy full: a budget that would
  // be silently ignored (and reported) is refused.
  if (!budget.empty() && policy == "full") fail("--kv-budget: not used by policy full (set --kv-policy too)");
  if (!budget.empty()) s.budget = BudgetSpec::parse(budget, "--kv-budget");
  if (!recent.empty()) s.recent = BudgetSpec::parse(recent, "--kv-recent");
  s.sinks = sinks;
  if (prefill_chunk < 0) fail("--prefill-chunk: must be at least 1, got {}", prefill_chunk);
  s.prefill_chunk = prefill_chunk;
  s.seed = seed;
  s.type = parse_kv_type(type);
  s.positions = parse_kv_positions(positions);
  resolve_kv(s, 1000);  // validates names and relations now (1000: any length works for %)
  return s;
}

void SamplingFlags::add(CLI::App& cmd, const std::string& seed_help) {
  cmd.add_option("--temp", temp, "Sampling temperature (0 = greedy)")->capture_default_str();
  cmd.add_option("--top-k", top_k, "Top-k filtering (0 = off)")->capture_default_str();
  cmd.add_option("--top-p", top_p, "Top-p (nucleus) filtering (1 = off)")->capture_default_str();
  cmd.add_option("-s,--seed", seed, seed_help)->check(unsigned_integer())->capture_default_str();
}

SamplerParams SamplingFlags::params() const {
  const SamplerParams p{temp, top_k, top_p, seed};
  p.validate();
  return p;
}

CLI::Validator unsigned_integer(uint64_t max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        // CLI11 converts with strtoull, which wraps "-1" and saturates 2^64 without a word,
        // and falls back to floating point for "1e23": only plain decimal digits pass here.
        uint64_t v = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (text.empty() || ptr != end || text[0] == '-' || text[0] == '+')
          return "expected a non-negative integer, got '" + text + "'";
        if (ec == std::errc::result_out_of_range || v > max)
          return "'" + text + "' is out of range (at most " + std::to_string(max) + ")";
        return {};
      },
      "UINT", "unsigned integer");
}

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void add_threads_flag(CLI::App& cmd, int& threads) {
  threads = default_threads();
  cmd.add_option("-t,--threads", threads, "Threads")->check(CLI::Range(1, 1024))->capture_default_str();
}

}  // namespace h2o::cli
