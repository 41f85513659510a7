// A grid of KV policies x budgets (x KV storage types) on one metric: perplexity of a text
// (eval/perplexity.h) or accuracy on a multiple-choice task (eval/tasks.h). `full` runs
// once (per storage type), as the 100% reference. Results go to CSV, JSON and a figure of the metric against the
// budget, one line per policy (the H2O paper's Figure 4 layout).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "kv/kv_config.h"

namespace h2o {

struct SweepGrid {
  std::vector<std::string> policies;  // run in this order; "full" once, budget-less
  std::vector<BudgetSpec> budgets;    // all percentages or all token counts
  std::vector<KvType> types;          // storage types of every (policy, budget); empty = base.type
  KvSettings base;                    // recent, sinks, prefill chunk, seed, positions for every point
};

// One grid point's measurement. Metric fields not used by the sweep's metric stay NaN.
struct SweepPoint {
  std::string policy;
  KvType type = KvType::F32;
  std::string budget;       // as given ("20%", "64"); "100%" or "all" for full
  double budget_value = 0;  // the number in `budget` (percent or slots); 100 / 0 for full
  int budget_slots = -1;    // slots per (layer, KV head) for a full window; -1 if per sequence
  double ppl = NAN, mean_nll = NAN;
  double acc = NAN, acc_stderr = NAN, acc_norm = NAN, acc_norm_stderr = NAN;
  size_t n = 0;             // tokens scored (perplexity) or items (task)
  size_t n_truncated = 0;   // task items with a choice cut to fit the model's context
  size_t kv_bytes_peak = 0;
  double seconds = 0;
  std::string error;        // non-empty if this point could not run (e.g. sinks >= budget)
};

struct SweepResult {
  std::string metric;   // "ppl" or "acc"
  std::string model;    // for titles and the JSON
  std::string source;   // text file or task name
  int ctx = 0;          // perplexity window (0 for tasks)
  int num_fewshot = 0;
  bool percent = true;  // budgets are percentages of the sequence
  bool several_types = false;  // the grid has more than one storage type: lines are "policy type"
  KvSettings base;
  std::vector<SweepPoint> points;
};

struct SweepCallbacks {
  // After each grid point: (index, total, point).
  std::function<void(size_t, size_t, const SweepPoint&)> on_point;
  // Inside a point: (done, total) tokens or items.
  std::function<void(size_t, size_t)> progress;
};

// The grid's points in run order, metric fields empty. Throws h2o::Error on an empty
// grid, an unknown policy, a mix of percentage and count budgets, or a budget-less grid
// with a bounded policy.
std::vector<SweepPoint> sweep_points(const SweepGrid& grid);

// base: ctx and session.threads are used; session.kv is replaced per point. A point whose
// settings fail (h2o::Error) records the message and the sweep goes on; if every point
// fails the first error is thrown.
SweepResult sweep_perplexity(std::shared_ptr<const Model> model, std::span<const int32_t> text_tokens,
                             const PerplexityOptions& base, const SweepGrid& grid, const SweepCallbacks& cb = {});
// base: num_fewshot, fewshot_seed, limit and session.threads are used.
SweepResult sweep_task(std::shared_ptr<const Model> model, const McTask& task, const EvalOptions& base,
                       const SweepGrid& grid, const SweepCallbacks& cb = {});

nlohmann::json to_json(const SweepResult& r);
std::string to_csv(const SweepResult& r);
// Policies as rows, budgets as columns, the metric in the cells (acc_norm too for tasks).
std::string format_table(const SweepResult& r);
// One line for a finished point of a sweep on `metric` ("ppl" or "acc"):
// "h2o 20%: ppl 5.1234 (102 slots)  kv_bytes_peak 1234  1.2 s" (the storage type after the
// budget unless it is f32).
std::string describe_point(const std::string& metric, const SweepPoint& p);

// Writes sweep.csv, sweep.json and the figure(s) sweep-ppl or sweep-acc + sweep-acc_norm
// (SVG + PNG, via gnuplot unless plots = false) into out_dir (created if missing).
std::vector<std::string> write_sweep(const SweepResult& r, const std::string& out_dir, bool plots = true);

}  // namespace h2o
