// `h2o generate`: prints the prompt and its continuation to stdout (as llama2.c's run
// does) and a one-line summary to stderr; --json prints one JSON object instead.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "commands.h"
#include "runtime/generate.h"

namespace h2o::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  KvFlags kv;
  std::string prompt;
  int n_predict = 256;
  SamplingFlags sampling;
  int threads = 1;
  bool json = false;
  bool trace = false;
  bool ignore_eos = false;
};

nlohmann::json kv_json(const KvResolved& kv) {
  return {{"policy", kv.policy}, {"budget", kv.budget},           {"recent", kv.recent},
          {"sinks", kv.sinks},   {"type", kv_type_name(kv.type)}, {"positions", kv_positions_name(kv.positions)}};
}

void run_generate(const GenerateFlags& f) {
  GenerateOptions opts;
  opts.prompt = f.prompt;
  opts.n_predict = f.n_predict;
  opts.ignore_eos = f.ignore_eos;
  opts.sampling = f.sampling.params();
  opts.session.kv = f.kv.settings();
  opts.session.threads = f.threads;
  auto model = f.model.load();
  auto stream = [&](std::string_view s) {
    if (!f.json) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  };
  const GenerateResult r = generate(model, opts, stream);
  const double prefill_tps =
      r.prefill_seconds > 0 ? static_cast<double>(r.prompt_tokens.size()) / r.prefill_seconds : 0.0;
  const double decode_tps = r.decode_seconds > 0 ? static_cast<double>(r.tokens.size()) / r.decode_seconds : 0.0;
  if (f.json) {
    nlohmann::json j = {
        {"prompt", r.prompt_text},
        {"text", r.text},
        {"prompt_tokens", r.prompt_tokens},
        {"tokens", r.tokens},
        {"n_prompt", r.prompt_tokens.size()},
        {"n_generated", r.tokens.size()},
        {"stop_reason", r.stop_reason},
        {"timings",
         {{"prefill_ms", r.prefill_seconds * 1e3},
          {"decode_ms", r.decode_seconds * 1e3},
          {"prefill_tokens_per_s", prefill_tps},
          {"decode_tokens_per_s", decode_tps}}},
        {"kv", kv_json(r.kv)},
        {"kv_bytes", r.kv_bytes},
        {"kv_bytes_peak", r.kv_bytes_peak},
    };
    if (f.trace) j["kv_bytes_trace"] = r.kv_bytes_trace;
    std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::puts(out.c_str());
    return;
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (r.stop_reason == "context")
    std::fprintf(stderr, "notice: stopped at the model's context length (%d tokens)\n", model->config().context_length);
  std::fprintf(stderr, "%s\n",
               fmt::format("prompt {} tok, generated {} tok ({}), prefill {:.1f} tok/s, decode {:.1f} tok/s, "
                           "kv {} bytes (peak {}), policy {}",
                           r.prompt_tokens.size(), r.tokens.size(), r.stop_reason, prefill_tps, decode_tps, r.kv_bytes,
                           r.kv_bytes_peak, opts.session.kv.describe())
                   .c_str());
}

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  f->model.add(*cmd);
  cmd->add_option("-p,--prompt", f->prompt, "Prompt text");
  cmd->add_option("-n,--n-predict", f->n_predict, "Tokens to generate")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  f->sampling.add(*cmd);
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past end-of-text tokens");
  cmd->add_flag("--json", f->json, "Print one JSON object (text, token ids, timings, KV bytes)");
  cmd->add_flag("--kv-trace", f->trace, "With --json: KV bytes after every generated token");
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace h2o::cli
