// `h2o perplexity`: scores a text file under a KV budget (see eval/perplexity.h).
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "eval/perplexity.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  KvFlags kv;
  std::string file;
  int ctx = 0;
  int max_tokens = 0;
  int threads = 1;
  bool json = false;
  bool per_token = false;
};

void run_perplexity(const PerplexityFlags& f) {
  PerplexityOptions opts;
  opts.session.kv = f.kv.settings();
  opts.session.threads = f.threads;
  opts.ctx = f.ctx;
  const std::string text = read_text_file(f.file, "text file");
  auto model = f.model.load();
  std::vector<int32_t> tokens = model->tokenizer().encode(text, false);
  if (f.max_tokens > 0 && tokens.size() > static_cast<size_t>(f.max_tokens)) tokens.resize(static_cast<size_t>(f.max_tokens));
  ProgressBar bar("perplexity");
  opts.progress = [&](size_t done, size_t total) { bar.update(done, total); };
  const PerplexityResult r = perplexity(model, tokens, opts);
  bar.finish();
  const double tps = r.seconds > 0 ? static_cast<double>(r.n_tokens) / r.seconds : 0.0;
  if (f.json) {
    nlohmann::json j = {{"model", f.model.model},
                        {"file", f.file},
                        {"ctx", f.ctx > 0 ? f.ctx : model->config().context_length},
                        {"n_tokens", r.n_tokens},
                        {"n_windows", r.n_windows},
                        {"mean_nll", r.mean_nll},
                        {"ppl", r.ppl},
                        {"kv_bytes_peak", r.kv_bytes_peak},
                        {"policy", r.kv.policy},
                        {"budget", r.kv.budget},
                        {"recent", r.kv.recent},
                        {"sinks", r.kv.sinks},
                        {"kv_budget_spec", f.kv.budget},
                        {"prefill_chunk", f.kv.prefill_chunk},
                        {"seconds", r.seconds},
                        {"tokens_per_s", tps}};
    if (f.per_token) j["nll"] = r.nll;
    std::puts(j.dump().c_str());
    return;
  }
  std::printf("%s\n", fmt::format("ppl {:.4f}  mean_nll {:.6f}  tokens {}  windows {}  kv_bytes_peak {}  policy {}  "
                                  "{:.1f} tok/s",
                                  r.ppl, r.mean_nll, r.n_tokens, r.n_windows, r.kv_bytes_peak,
                                  opts.session.kv.describe(), tps)
                          .c_str());
  if (f.per_token) {
    for (double v : r.nll) std::printf("%.6f\n", v);
  }
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto f = std::make_shared<PerplexityFlags>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a text file under a KV budget");
  f->model.add(*cmd);
  cmd->add_option("-f,--file", f->file, "Text file to score")->required();
  cmd->add_option("-c,--ctx", f->ctx, "Window length in tokens, BOS included (default: the model's context)")
      ->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--max-tokens", f->max_tokens, "Score only the first N tokens of the text (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--json", f->json, "Print one JSON object");
  cmd->add_flag("--per-token", f->per_token, "Also give every token's negative log-likelihood");
  cmd->callback([f] { run_perplexity(*f); });
}

}  // namespace h2o::cli
