// `h2o eval TASK`: accuracy on a multiple-choice task (eval/tasks.h) or ROUGE on XSum
// (eval/xsum.h) under a KV budget. A summary table on stdout (one JSON object with
// --json); per-item results as JSON lines with --output.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "eval/tasks.h"
#include "eval/xsum.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct EvalFlags {
  ModelFlags model;
  KvFlags kv;
  std::string task;
  std::string data_dir = "../shared/data/eval";
  int num_fewshot = 0;
  uint64_t fewshot_seed = 1234;
  size_t limit = 0;
  std::string output;
  bool json = false;
  int threads = 1;
  // xsum only
  uint64_t seed = 42;
  float temp = -1.0f;  // < 0: the requests' own temperature
  bool no_stem = false;
};

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::ofstream open_output(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("--output: cannot write {}", path);
  return out;
}

nlohmann::json kv_json(const EvalFlags& f, const KvSettings& kv) {
  return {{"policy", kv.policy},
          {"kv_budget_spec", f.kv.budget},
          {"kv_recent_spec", f.kv.recent},
          {"kv", kv.describe()},
          {"kv_type", kv_type_name(kv.type)},
          {"kv_positions", kv_positions_name(kv.positions)},
          {"prefill_chunk", kv.prefill_chunk}};
}

void run_multiple_choice(const EvalFlags& f, const KvSettings& kv) {
  const McTask task = load_task(f.task, f.data_dir);
  auto model = f.model.load();
  EvalOptions opts;
  opts.session.kv = kv;
  opts.session.threads = f.threads;
  opts.num_fewshot = f.num_fewshot;
  opts.fewshot_seed = f.fewshot_seed;
  opts.limit = f.limit;
  ProgressBar bar(f.task);
  opts.progress = [&](size_t done, size_t total) { bar.update(done, total); };
  std::vector<ItemResult> items;
  const EvalSummary s = evaluate(model, task, opts, &items);
  bar.finish();
  if (!f.output.empty()) {
    std::ofstream out = open_output(f.output);
    for (const ItemResult& r : items) {
      out << dump({{"id", r.id},
                   {"label", r.label},
                   {"loglik", r.loglik},
                   {"cont_tokens", r.cont_tokens},
                   {"cont_chars", r.cont_chars},
                   {"pred", r.pred},
                   {"pred_norm", r.pred_norm},
                   {"correct", r.pred == r.label},
                   {"correct_norm", r.pred_norm == r.label},
                   {"truncated", r.truncated}})
          << '\n';
    }
    if (!out) fail("--output: write error on {}", f.output);
  }
  if (f.json) {
    nlohmann::json j = {{"task", s.task},
                        {"file", task.source_file},
                        {"model", f.model.model},
                        {"n", s.n},
                        {"num_fewshot", f.num_fewshot},
                        {"acc", s.acc},
                        {"acc_stderr", s.acc_stderr},
                        {"acc_norm", s.acc_norm},
                        {"acc_norm_stderr", s.acc_norm_stderr},
                        {"n_truncated", s.n_truncated},
                        {"kv_bytes_peak", s.kv_bytes_peak},
                        {"seconds", s.seconds}};
    j.update(kv_json(f, kv));
    std::puts(dump(j).c_str());
    return;
  }
  std::printf("%s\n", fmt::format("{}: {} items, {}-shot, kv {}, prefill chunk {}", s.task, s.n, f.num_fewshot,
                                  kv.describe(), kv.prefill_chunk > 0 ? std::to_string(kv.prefill_chunk) : "whole")
                          .c_str());
  std::printf("| metric   |  value |  stderr |\n|----------|--------|---------|\n");
  std::printf("| acc      | %.4f | %.4f  |\n| acc_norm | %.4f | %.4f  |\n", s.acc, s.acc_stderr, s.acc_norm,
              s.acc_norm_stderr);
  std::printf("kv_bytes_peak %zu, %.1f s\n", s.kv_bytes_peak, s.seconds);
  if (s.n_truncated > 0)
    std::printf("note: %zu items were cut to fit the model's context of %d tokens\n", s.n_truncated,
                model->config().context_length);
}

nlohmann::json rouge_json(const RougeScore& r) {
  return {{"precision", r.precision}, {"recall", r.recall}, {"fmeasure", r.fmeasure}};
}

void run_xsum(const EvalFlags& f, const KvSettings& kv) {
  if (f.num_fewshot != 0) fail("--num-fewshot: xsum's requests are fixed zero-shot prompts");
  const std::string dir = f.data_dir.empty() || f.data_dir.back() == '/' ? f.data_dir : f.data_dir + "/";
  const std::string file = dir + "xsum_0shot.jsonl";
  const std::vector<XsumRequest> requests = load_xsum(file);
  auto model = f.model.load();
  XsumOptions opts;
  opts.session.kv = kv;
  opts.session.threads = f.threads;
  opts.limit = f.limit;
  opts.seed = f.seed;
  if (f.temp >= 0) opts.temperature = f.temp;
  opts.use_stemmer = !f.no_stem;
  ProgressBar bar("xsum");
  opts.progress = [&](size_t done, size_t total) { bar.update(done, total); };
  std::vector<XsumItemResult> items;
  const XsumSummary s = evaluate_xsum(model, requests, opts, &items);
  bar.finish();
  if (!f.output.empty()) {
    std::ofstream out = open_output(f.output);
    for (const XsumItemResult& r : items) {
      out << dump({{"id", r.id},
                   {"summary", r.summary},
                   {"reference", r.reference},
                   {"rouge1", rouge_json(r.rouge.rouge1)},
                   {"rouge2", rouge_json(r.rouge.rouge2)},
                   {"rougeL", rouge_json(r.rouge.rougeL)},
                   {"prompt_tokens", r.prompt_tokens},
                   {"truncated", r.truncated},
                   {"stop_reason", r.stop_reason}})
          << '\n';
    }
    if (!out) fail("--output: write error on {}", f.output);
  }
  if (f.json) {
    nlohmann::json j = {{"task", "xsum"},
                        {"file", file},
                        {"model", f.model.model},
                        {"n", s.n},
                        {"rouge1", s.mean.rouge1.fmeasure},
                        {"rouge2", s.mean.rouge2.fmeasure},
                        {"rougeL", s.mean.rougeL.fmeasure},
                        {"rouge_detail",
                         {{"rouge1", rouge_json(s.mean.rouge1)},
                          {"rouge2", rouge_json(s.mean.rouge2)},
                          {"rougeL", rouge_json(s.mean.rougeL)}}},
                        {"stemmer", !f.no_stem},
                        {"n_truncated", s.n_truncated},
                        {"kv_bytes_peak", s.kv_bytes_peak},
                        {"seconds", s.seconds}};
    j.update(kv_json(f, kv));
    std::puts(dump(j).c_str());
    return;
  }
  std::printf("%s\n", fmt::format("xsum: {} requests ({} articles cut to fit the context), kv {}, prefill chunk {}",
                                  s.n, s.n_truncated, kv.describe(),
                                  kv.prefill_chunk > 0 ? std::to_string(kv.prefill_chunk) : "whole")
                          .c_str());
  std::printf("| metric  | F      | P      | R      |\n|---------|--------|--------|--------|\n");
  for (auto [name, r] :
       {std::pair{"rouge1", s.mean.rouge1}, std::pair{"rouge2", s.mean.rouge2}, std::pair{"rougeL", s.mean.rougeL}})
    std::printf("| %-7s | %.4f | %.4f | %.4f |\n", name, r.fmeasure, r.precision, r.recall);
  std::printf("kv_bytes_peak %zu, %.1f s\n", s.kv_bytes_peak, s.seconds);
}

void run_eval(const EvalFlags& f) {
  const KvSettings kv = f.kv.settings();
  if (f.task == "xsum")
    run_xsum(f, kv);
  else
    run_multiple_choice(f, kv);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand("eval", "Task accuracy (lm-eval-harness formats) or XSum ROUGE under a KV budget");
  std::vector<std::string> tasks = task_names();
  tasks.push_back("xsum");
  cmd->add_option("task", f->task, "Task: copa, piqa, openbookqa, winogrande, rte, mathqa, xsum")
      ->required()
      ->check(CLI::IsMember(tasks));
  f->model.add(*cmd);
  cmd->add_option("--data-dir", f->data_dir, "Folder with the task files")->capture_default_str();
  cmd->add_option("--num-fewshot", f->num_fewshot, "Examples before each item (drawn from the task's other items)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--fewshot-seed", f->fewshot_seed, "Seed of the few-shot draw")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("--limit", f->limit, "Evaluate only the first N items (0 = all)")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("-o,--output", f->output, "Per-item results as JSON lines");
  cmd->add_flag("--json", f->json, "Print the summary as one JSON object");
  add_threads_flag(*cmd, f->threads);
  // The paper's tables apply the budget inside the prompt: one token per step by default.
  f->kv.prefill_chunk = 1;
  f->kv.add(*cmd);
  cmd->get_option("--prefill-chunk")
      ->description(
          "Prompt tokens per forward step (default 1: the budget applies inside the prompt, as in the "
          "paper; 0 = the whole prompt at once)")
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "xsum: sampling seed (request i uses seed + i)")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("--temp", f->temp, "xsum: sampling temperature instead of the requests' 0.3 (0 = greedy)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_flag("--no-stem", f->no_stem, "xsum: ROUGE without Porter stemming");
  cmd->callback([f] { run_eval(*f); });
}

}  // namespace h2o::cli
