// `h2o sweep`: a grid of KV policies x budgets on perplexity or a multiple-choice task
// (see eval/sweep.h). One line per grid point on stderr, a table on stdout (or the JSON
// with --json), CSV/JSON/figures in --out-dir.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "eval/sweep.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct SweepFlags {
  ModelFlags model;
  KvFlags kv;  // only --kv-recent, --kv-sinks, --prefill-chunk, --kv-seed and --kv-positions are offered
  std::vector<std::string> policies = {"full", "window", "sink", "h2o", "tova", "random"};
  std::vector<std::string> budgets = {"5%", "10%", "20%", "50%"};
  std::vector<std::string> types = {"f32"};
  // perplexity
  std::string text;
  int max_tokens = 0;
  int ctx = 0;
  // task
  std::string task;
  std::string data_dir = "../shared/data/eval";
  size_t limit = 0;
  int num_fewshot = 0;
  uint64_t fewshot_seed = 1234;
  std::string out_dir = "sweep-out";
  bool json = false;
  bool no_plots = false;
  int threads = 1;
};

SweepGrid make_grid(const SweepFlags& f) {
  SweepGrid g;
  g.policies = f.policies;
  for (const std::string& b : f.budgets) g.budgets.push_back(BudgetSpec::parse(b, "--budgets"));
  if (!f.kv.recent.empty()) g.base.recent = BudgetSpec::parse(f.kv.recent, "--kv-recent");
  if (f.kv.sinks < 0) fail("--kv-sinks: must be at least 0, got {}", f.kv.sinks);
  g.base.sinks = f.kv.sinks;
  if (f.kv.prefill_chunk < 0) fail("--prefill-chunk: must be at least 1, got {}", f.kv.prefill_chunk);
  g.base.prefill_chunk = f.kv.prefill_chunk;
  g.base.seed = f.kv.seed;
  g.base.positions = parse_kv_positions(f.kv.positions);
  for (const std::string& t : f.types) g.types.push_back(parse_kv_type(t, "--kv-types"));
  sweep_points(g);  // validates names and budgets before the model loads
  return g;
}

void run_sweep(const SweepFlags& f) {
  if (f.text.empty() == f.task.empty()) fail("sweep: give either --perplexity TEXT or --task NAME");
  const SweepGrid grid = make_grid(f);
  const std::string metric = f.text.empty() ? "acc" : "ppl";
  const std::string model_name = std::filesystem::path(f.model.model).filename().string();
  // A fresh bar per grid point, so its time estimate is that point's.
  auto bar = std::make_unique<ProgressBar>("sweep 1");
  SweepCallbacks cb;
  cb.progress = [&](size_t done, size_t total) { bar->update(done, total); };
  cb.on_point = [&](size_t i, size_t n, const SweepPoint& p) {
    bar->finish();
    std::fprintf(stderr, "sweep [%zu/%zu] %s\n", i + 1, n, describe_point(metric, p).c_str());
    std::fflush(stderr);
    bar = std::make_unique<ProgressBar>(fmt::format("sweep {}", i + 2));
  };
  SweepResult r;
  if (!f.text.empty()) {
    if (f.limit != 0 || f.num_fewshot != 0) fail("--limit/--num-fewshot: only for --task sweeps");
    const std::string text = read_text_file(f.text);
    auto model = f.model.load();
    std::vector<int32_t> tokens = model->tokenizer().encode(text, false);
    if (f.max_tokens > 0 && tokens.size() > static_cast<size_t>(f.max_tokens)) tokens.resize(static_cast<size_t>(f.max_tokens));
    PerplexityOptions base;
    base.ctx = f.ctx;
    base.session.threads = f.threads;
    r = sweep_perplexity(model, tokens, base, grid, cb);
    r.source = std::filesystem::path(f.text).filename().string();
  } else {
    if (f.max_tokens != 0 || f.ctx != 0) fail("--max-tokens/--ctx: only for --perplexity sweeps");
    const McTask task = load_task(f.task, f.data_dir);
    auto model = f.model.load();
    EvalOptions base;
    base.session.threads = f.threads;
    base.limit = f.limit;
    base.num_fewshot = f.num_fewshot;
    base.fewshot_seed = f.fewshot_seed;
    r = sweep_task(model, task, base, grid, cb);
  }
  r.model = model_name;
  const auto written = write_sweep(r, f.out_dir, !f.no_plots);
  if (f.json) {
    std::puts(to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::printf("%s\n", fmt::format("sweep: {} on {} ({}), prefill chunk {}, {} positions", r.metric, r.source, r.model,
                                  r.base.prefill_chunk > 0 ? std::to_string(r.base.prefill_chunk) : "whole",
                                  kv_positions_name(r.base.positions))
                          .c_str());
  std::fputs(format_table(r).c_str(), stdout);
  std::printf("wrote %zu files to %s/\n", written.size(), f.out_dir.c_str());
}

}  // namespace

void register_sweep(CLI::App& app) {
  auto f = std::make_shared<SweepFlags>();
  CLI::App* cmd = app.add_subcommand("sweep", "Grid of KV policies x budgets on perplexity or a task, with a figure");
  f->model.add(*cmd);
  cmd->add_option("--policies", f->policies, "Comma-separated policies (full runs once, as the reference)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--budgets", f->budgets, "Comma-separated budgets: all P% of the sequence or all token counts")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--perplexity", f->text, "Sweep perplexity on this text file");
  cmd->add_option("--max-tokens", f->max_tokens, "Perplexity: score only the first N tokens (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("-c,--ctx", f->ctx, "Perplexity: window length in tokens, BOS included (default: the model's context)")
      ->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--task", f->task, "Sweep accuracy on this multiple-choice task (copa, piqa, ...)")
      ->check(CLI::IsMember(task_names()));
  cmd->add_option("--limit", f->limit, "Task: only the first N items (0 = all)")->check(unsigned_integer());
  cmd->add_option("--data-dir", f->data_dir, "Task: directory of the task files")->capture_default_str();
  cmd->add_option("--num-fewshot", f->num_fewshot, "Task: k-shot examples")->check(CLI::Range(0, 64));
  cmd->add_option("--fewshot-seed", f->fewshot_seed, "Task: seed of the k-shot draw")
      ->check(unsigned_integer())
      ->capture_default_str();
  f->kv.prefill_chunk = 1;
  f->kv.add(*cmd);
  // The grid sets the policy and budget; the remaining KV flags apply to every point.
  cmd->remove_option(cmd->get_option("--kv-policy"));
  cmd->remove_option(cmd->get_option("--kv-budget"));
  cmd->remove_option(cmd->get_option("--kv-type"));
  cmd->add_option("--kv-types", f->types, "Comma-separated KV storage types, a grid dimension: f32, f16, q8")
      ->delimiter(',')
      ->check(kv_type_validator())
      ->capture_default_str();
  cmd->get_option("--prefill-chunk")
      ->description("Tokens per forward step (1 applies the budget inside every prompt, as in the paper; 0 = whole)")
      ->capture_default_str();
  cmd->add_option("--out-dir", f->out_dir, "Directory for sweep.csv, sweep.json and the SVG/PNG figure")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print the JSON results instead of the table");
  cmd->add_flag("--no-plots", f->no_plots, "Write the tables only (no gnuplot needed)");
  add_threads_flag(*cmd, f->threads);
  cmd->callback([f] { run_sweep(*f); });
}

}  // namespace h2o::cli
