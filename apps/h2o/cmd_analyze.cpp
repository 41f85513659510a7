// `h2o analyze`: attention sparsity, accumulated-score power law, heavy hitters and their
// overlap for a text under a full cache (see eval/analyze.h). Files go to --out-dir; a
// readable summary (or, with --json, the JSON summary) goes to stdout.
#include <cstdio>
#include <filesystem>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "eval/analyze.h"

namespace h2o::cli {
namespace {

struct AnalyzeFlags {
  ModelFlags model;
  std::string file;
  int tokens = 512;
  int top_k = 0;
  double threshold = 0.01;
  int prefill_chunk = 0;
  std::string out_dir = "analyze-out";
  bool json = false;
  bool no_plots = false;
  int threads = 1;
};

void run_analyze(const AnalyzeFlags& f) {
  const std::string text = read_text_file(f.file, "text file");
  auto model = f.model.load();
  std::vector<int32_t> tokens = model->tokenizer().encode(text, false);
  if (tokens.size() > static_cast<size_t>(f.tokens)) tokens.resize(static_cast<size_t>(f.tokens));
  AnalyzeOptions opts;
  opts.top_k = f.top_k;
  opts.threshold = f.threshold;
  opts.prefill_chunk = f.prefill_chunk;
  opts.threads = f.threads;
  AnalysisReport r = analyze_attention(model, tokens, opts);
  r.model = std::filesystem::path(f.model.model).filename().string();
  const auto written = write_analysis(r, f.out_dir, !f.no_plots);
  if (f.json) {
    std::puts(to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fputs(format_summary(r).c_str(), stdout);
    std::printf("\nwrote %zu files to %s/\n", written.size(), f.out_dir.c_str());
  }
}

}  // namespace

void register_analyze(CLI::App& app) {
  auto f = std::make_shared<AnalyzeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "analyze", "Attention sparsity, accumulated-score power law, heavy hitters and their overlap (full cache)");
  f->model.add(*cmd);
  cmd->add_option("-f,--file", f->file, "Text file to analyse")->required();
  cmd->add_option("--tokens", f->tokens,
                  "Analyse BOS + the first N tokens of the text (cut to the model's context - 1; the summary says how many)")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--top-k", f->top_k, "Heavy hitters per head (default: 10% of the tokens, the paper's H)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--threshold", f->threshold, "Sparsity cut-off as a fraction of each row's maximum")
      ->check(CLI::Range(1e-9, 0.999999))
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", f->prefill_chunk,
                  "Tokens per forward step (default: the whole text; 1 gives the same rows, slower)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--out-dir", f->out_dir, "Directory for the JSON, CSV tables and SVG/PNG figures")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print the JSON summary instead of the text tables");
  cmd->add_flag("--no-plots", f->no_plots, "Write the tables only (no gnuplot needed)");
  add_threads_flag(*cmd, f->threads);
  cmd->callback([f] { run_analyze(*f); });
}

}  // namespace h2o::cli
