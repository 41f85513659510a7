// `h2o perplexity`: scores a text file under a KV budget (see eval/perplexity.h); with
// --segment, perplexity per segment of the window too, and with --plot a figure of it
// (this run, plus earlier runs' JSON given with --plot-with).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "eval/perplexity.h"
#include "plot/gnuplot.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  KvFlags kv;
  std::string file;
  int ctx = 0;
  int max_tokens = 0;
  int segment = 0;
  std::string plot;
  std::vector<std::string> plot_with;
  int threads = 1;
  bool json = false;
  bool per_token = false;
};

nlohmann::json segments_json(const PerplexityResult& r) {
  nlohmann::json a = nlohmann::json::array();
  for (const PerplexitySegment& s : r.segments)
    a.push_back({{"first", s.first}, {"n", s.n}, {"mean_nll", s.mean_nll}, {"ppl", s.ppl}});
  return a;
}

// One line of the figure from a run's JSON: perplexity at each segment's end. A run with a
// single segment (a short window) is a dashed level across the figure, to compare against.
plot::Series segment_series(const nlohmann::json& run) {
  plot::Series s;
  const int ctx = run.at("ctx").get<int>();
  s.label = fmt::format("{}, ctx {}", run.at("kv_description").get<std::string>(), ctx);
  for (const auto& seg : run.at("segments")) {
    const size_t end = seg.at("first").get<size_t>() + run.at("segment").get<size_t>();
    s.x.push_back(static_cast<double>(std::min(end, static_cast<size_t>(ctx - 1))));
    s.y.push_back(seg.at("ppl").get<double>());
  }
  if (s.x.size() == 1) s.style = plot::LineStyle::Dashed;
  return s;
}

void write_plot(const PerplexityFlags& f, const nlohmann::json& run) {
  std::vector<nlohmann::json> runs;
  for (const std::string& path : f.plot_with) {
    nlohmann::json other;
    try {
      other = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception&) {
      fail("--plot-with: {} is not JSON", path);
    }
    if (!other.is_object() || !other.contains("segments") || !other.contains("kv_description") ||
        !other.contains("segment") || !other.contains("ctx") || !other.at("segments").is_array())
      fail("--plot-with: {} is not the JSON of `h2o perplexity --segment N --json`", path);
    runs.push_back(std::move(other));
  }
  runs.push_back(run);
  plot::LinePlot p;
  p.title = fmt::format("Perplexity per {}-token segment ({}, {})", f.segment,
                        std::filesystem::path(f.model.model).filename().string(),
                        std::filesystem::path(f.file).filename().string());
  p.x_label = "tokens into the window (end of segment)";
  p.y_label = "perplexity of the segment";
  double x_end = 0;
  std::vector<plot::Series> series;
  for (const auto& r : runs) {
    if (r.at("segments").empty()) fail("--plot-with: a run has no segments");
    try {
      series.push_back(segment_series(r));
    } catch (const nlohmann::json::exception& e) {
      fail("--plot-with: a run's JSON lacks a field: {}", e.what());
    }
    x_end = std::max(x_end, series.back().x.back());
  }
  for (plot::Series& s : series) {
    if (s.x.size() == 1) {  // a level across the figure
      s.x = {0.0, x_end};
      s.y = {s.y[0], s.y[0]};
    }
    p.series.push_back(std::move(s));
  }
  p.log_y = true;  // past the trained context absolute positions can be orders of magnitude worse
  // Long labels: inside, at the bottom (the log axis starts at 1, far below any segment's
  // perplexity), so the lines keep the figure's width.
  p.key_position = "inside bottom center";
  const std::filesystem::path out(f.plot);
  const std::string dir = out.has_parent_path() ? out.parent_path().string() : ".";
  std::filesystem::create_directories(dir);
  const plot::Figure fig = plot::render(p, dir, out.filename().string());
  std::fprintf(stderr, "perplexity: wrote %s and %s\n", fig.svg.c_str(), fig.png.c_str());
}

void run_perplexity(const PerplexityFlags& f) {
  if (!f.plot.empty() && f.segment <= 0) fail("--plot: needs --segment N");
  if (!f.plot_with.empty() && f.plot.empty()) fail("--plot-with: needs --plot PATH");
  PerplexityOptions opts;
  opts.session.kv = f.kv.settings();
  opts.session.threads = f.threads;
  opts.ctx = f.ctx;
  opts.segment = f.segment;
  const std::string text = read_text_file(f.file, "text file");
  auto model = f.model.load();
  std::vector<int32_t> tokens = model->tokenizer().encode(text, false);
  if (f.max_tokens > 0 && tokens.size() > static_cast<size_t>(f.max_tokens)) tokens.resize(static_cast<size_t>(f.max_tokens));
  ProgressBar bar("perplexity");
  opts.progress = [&](size_t done, size_t total) { bar.update(done, total); };
  const PerplexityResult r = perplexity(model, tokens, opts);
  bar.finish();
  const double tps = r.seconds > 0 ? static_cast<double>(r.n_tokens) / r.seconds : 0.0;
  nlohmann::json j = {{"model", f.model.model},
                      {"file", f.file},
                      {"ctx", f.ctx > 0 ? f.ctx : model->config().context_length},
                      {"trained_context", model->config().context_length},
                      {"n_tokens", r.n_tokens},
                      {"n_windows", r.n_windows},
                      {"mean_nll", r.mean_nll},
                      {"ppl", r.ppl},
                      {"kv_bytes_peak", r.kv_bytes_peak},
                      {"policy", r.kv.policy},
                      {"budget", r.kv.budget},
                      {"recent", r.kv.recent},
                      {"sinks", r.kv.sinks},
                      {"kv_type", kv_type_name(r.kv.type)},
                      {"kv_positions", kv_positions_name(r.kv.positions)},
                      {"kv_description", opts.session.kv.describe()},
                      {"kv_budget_spec", f.kv.budget},
                      {"prefill_chunk", f.kv.prefill_chunk},
                      {"seconds", r.seconds},
                      {"tokens_per_s", tps}};
  if (f.segment > 0) {
    j["segment"] = f.segment;
    j["segments"] = segments_json(r);
  }
  if (!f.plot.empty()) write_plot(f, j);
  if (f.json) {
    if (f.per_token) j["nll"] = r.nll;
    std::puts(j.dump().c_str());
    return;
  }
  std::printf("%s\n", fmt::format("ppl {:.4f}  mean_nll {:.6f}  tokens {}  windows {}  kv_bytes_peak {}  policy {}  "
                                  "{:.1f} tok/s",
                                  r.ppl, r.mean_nll, r.n_tokens, r.n_windows, r.kv_bytes_peak,
                                  opts.session.kv.describe(), tps)
                          .c_str());
  for (const PerplexitySegment& s : r.segments)
    std::printf("%s\n",
                fmt::format("segment {:>6} .. {:<6} ppl {:.4f}  ({} tokens)", s.first, s.first + f.segment, s.ppl, s.n)
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
  cmd->add_option("-c,--ctx", f->ctx,
                  "Window length in tokens, BOS included (default: the model's context; longer only under a bounded "
                  "--kv-policy, which streams past it)")
      ->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--max-tokens", f->max_tokens, "Score only the first N tokens of the text (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--segment", f->segment, "Also report perplexity per N scored tokens of the window")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--plot", f->plot, "With --segment: draw perplexity per segment to PATH.svg/.png");
  cmd->add_option("--plot-with", f->plot_with, "With --plot: also draw these runs (their --segment --json output)");
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--json", f->json, "Print one JSON object");
  cmd->add_flag("--per-token", f->per_token, "Also give every token's negative log-likelihood");
  cmd->callback([f] { run_perplexity(*f); });
}

}  // namespace h2o::cli
