#include "eval/sweep.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/check.h"
#include "plot/gnuplot.h"

namespace h2o {
namespace {

std::string budget_text(const BudgetSpec& b) { return b.to_string(); }

std::string csv_num(double v) { return std::isfinite(v) ? fmt::format("{:.8g}", v) : ""; }

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

void write_text(const std::string& path, const std::string& text, std::vector<std::string>& written) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot write file", path);
  out << text;
  out.close();
  if (!out) fail("{}: write error", path);
  written.push_back(path);
}

KvSettings point_settings(const SweepGrid& grid, const SweepPoint& p) {
  KvSettings kv = grid.base;
  kv.policy = p.policy;
  kv.type = p.type;
  kv.budget.reset();
  if (p.policy == "full") {
    kv.recent.reset();  // recent/sinks only matter to bounded policies
    return kv;
  }
  kv.budget = BudgetSpec::parse(p.budget, "--budgets");
  if (p.policy != "h2o" && p.policy != "random") kv.recent.reset();
  return kv;
}

// The shared loop: measure every point, record per-point failures, report progress.
SweepResult run_grid(const SweepGrid& grid, const SweepCallbacks& cb,
                     const std::function<void(const KvSettings&, SweepPoint&)>& measure) {
  SweepResult r;
  r.base = grid.base;
  r.points = sweep_points(grid);
  r.percent = grid.budgets.empty() || grid.budgets.front().percent;
  r.several_types = grid.types.size() > 1;
  std::string first_error;
  size_t failed = 0;
  for (size_t i = 0; i < r.points.size(); ++i) {
    SweepPoint& p = r.points[i];
    try {
      measure(point_settings(grid, p), p);
    } catch (const Error& e) {
      p.error = e.what();
      if (first_error.empty()) first_error = p.error;
      ++failed;
    }
    if (cb.on_point) cb.on_point(i, r.points.size(), p);
  }
  if (failed == r.points.size()) throw Error(first_error);
  return r;
}

// Budget range of the grid, for the full-cache reference line.
std::pair<double, double> budget_range(const SweepResult& r) {
  double lo = INFINITY, hi = -INFINITY;
  for (const SweepPoint& p : r.points) {
    if (p.policy == "full") continue;
    lo = std::min(lo, p.budget_value);
    hi = std::max(hi, p.budget_value);
  }
  if (!std::isfinite(lo)) return {0.0, r.percent ? 100.0 : 1.0};
  return {lo, hi};
}

// The table row / figure line of a point: its policy, with its storage type when the grid
// has several.
std::string line_of(const SweepResult& r, const SweepPoint& p) {
  return r.several_types ? fmt::format("{} {}", p.policy, kv_type_name(p.type)) : p.policy;
}

double metric_of(const SweepPoint& p, const std::string& m) {
  if (m == "ppl") return p.ppl;
  if (m == "acc") return p.acc;
  return p.acc_norm;
}

double stderr_of(const SweepPoint& p, const std::string& m) {
  if (m == "acc") return p.acc_stderr;
  if (m == "acc_norm") return p.acc_norm_stderr;
  return NAN;
}

plot::LinePlot metric_plot(const SweepResult& r, const std::string& m) {
  plot::LinePlot pl;
  const std::string what = m == "ppl" ? "Perplexity" : m == "acc" ? "Accuracy" : "Accuracy (length-normalised)";
  const std::string source = r.metric == "ppl" ? fmt::format("{}, {}-token windows", r.source, r.ctx)
                                               : fmt::format("{} {}-shot", r.source, r.num_fewshot);
  pl.title = fmt::format("{} vs KV budget ({}; {})", what, r.model, source);
  pl.x_label = r.percent ? "KV budget per layer and KV head (% of the sequence)"
                         : "KV budget per layer and KV head (slots)";
  pl.y_label = m == "ppl" ? "perplexity (lower is better)" : fmt::format("{} (fraction correct)", m);
  const auto [lo, hi] = budget_range(r);
  std::vector<std::string> order;
  for (const SweepPoint& p : r.points) {
    if (std::find(order.begin(), order.end(), line_of(r, p)) == order.end()) order.push_back(line_of(r, p));
  }
  double ymin = INFINITY, ymax = -INFINITY;
  std::vector<plot::Series> band;
  for (const std::string& line : order) {
    plot::Series s{line, {}, {}, plot::LineStyle::LinesPoints, {}};
    for (const SweepPoint& p : r.points) {
      if (line_of(r, p) != line) continue;
      const double y = metric_of(p, m);
      if (!std::isfinite(y)) continue;
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
      if (p.policy == "full") {
        s.label = r.several_types ? fmt::format("full cache {}", kv_type_name(p.type)) : "full cache";
        s.style = plot::LineStyle::Dashed;
        if (!r.several_types) s.color = "#000000";
        s.x = {lo, hi};
        s.y = {y, y};
        // Accuracy differences within full's standard error are noise: draw that band.
        const double se = stderr_of(p, m);
        if (std::isfinite(se) && se > 0) {
          for (double sign : {1.0, -1.0}) {
            band.push_back({sign > 0 ? "full ± 1 std. error" : "", {lo, hi}, {y + sign * se, y + sign * se},
                            plot::LineStyle::Dotted, "#7f7f7f"});
            ymin = std::min(ymin, y - se);
            ymax = std::max(ymax, y + se);
          }
        }
      } else {
        s.x.push_back(p.budget_value);
        s.y.push_back(y);
      }
    }
    if (!s.x.empty()) pl.series.push_back(std::move(s));
  }
  for (plot::Series& b : band) pl.series.push_back(std::move(b));
  // Perplexity under a tiny window can be orders of magnitude above full's: log scale then.
  pl.log_y = m == "ppl" && ymin > 0 && ymax / ymin > 5.0;
  pl.key_position = "outside right top";  // never over the lines
  return pl;
}

}  // namespace

std::vector<SweepPoint> sweep_points(const SweepGrid& grid) {
  if (grid.policies.empty()) fail("--policies: no policy given");
  const auto& names = kv_policy_names();
  for (const std::string& p : grid.policies) {
    if (std::find(names.begin(), names.end(), p) == names.end())
      fail("--policies: unknown policy '{}' (choose from full, window, sink, h2o, tova, random)", p);
  }
  for (const BudgetSpec& b : grid.budgets) {
    if (b.percent != grid.budgets.front().percent)
      fail("--budgets: give all budgets as percentages or all as token counts, not a mix");
  }
  const bool percent = grid.budgets.empty() || grid.budgets.front().percent;
  const std::vector<KvType> types = grid.types.empty() ? std::vector<KvType>{grid.base.type} : grid.types;
  for (size_t i = 0; i < types.size(); ++i) {
    if (std::find(types.begin(), types.begin() + static_cast<std::ptrdiff_t>(i), types[i]) !=
        types.begin() + static_cast<std::ptrdiff_t>(i))
      fail("--kv-types: {} is given twice", kv_type_name(types[i]));
  }
  std::vector<SweepPoint> points;
  bool full_done = false;
  for (const std::string& policy : grid.policies) {
    if (policy == "full") {
      if (full_done) continue;
      full_done = true;
      for (KvType t : types) {
        SweepPoint p;
        p.policy = policy;
        p.type = t;
        p.budget = percent ? "100%" : "all";
        p.budget_value = percent ? 100.0 : 0.0;
        points.push_back(p);
      }
      continue;
    }
    if (grid.budgets.empty()) fail("--budgets: policy {} needs at least one budget", policy);
    for (const BudgetSpec& b : grid.budgets) {
      for (KvType t : types) {
        SweepPoint p;
        p.policy = policy;
        p.type = t;
        p.budget = budget_text(b);
        p.budget_value = b.value;
        points.push_back(p);
      }
    }
  }
  return points;
}

SweepResult sweep_perplexity(std::shared_ptr<const Model> model, std::span<const int32_t> text_tokens,
                             const PerplexityOptions& base, const SweepGrid& grid, const SweepCallbacks& cb) {
  const int ctx = base.ctx > 0 ? base.ctx : model->config().context_length;
  SweepResult r = run_grid(grid, cb, [&](const KvSettings& kv, SweepPoint& p) {
    PerplexityOptions o = base;
    o.ctx = ctx;
    o.session.kv = kv;
    o.progress = cb.progress;
    resolve_kv(kv, ctx);  // reject impossible settings (sinks >= budget) before running
    const PerplexityResult pr = perplexity(model, text_tokens, o);
    p.ppl = pr.ppl;
    p.mean_nll = pr.mean_nll;
    p.n = pr.n_tokens;
    p.kv_bytes_peak = pr.kv_bytes_peak;
    p.seconds = pr.seconds;
    p.budget_slots = p.policy == "full" ? ctx : pr.kv.budget;
  });
  r.metric = "ppl";
  r.ctx = ctx;
  return r;
}

SweepResult sweep_task(std::shared_ptr<const Model> model, const McTask& task, const EvalOptions& base,
                       const SweepGrid& grid, const SweepCallbacks& cb) {
  SweepResult r = run_grid(grid, cb, [&](const KvSettings& kv, SweepPoint& p) {
    EvalOptions o = base;
    o.session.kv = kv;
    o.progress = cb.progress;
    const EvalSummary s = evaluate(model, task, o);
    p.acc = s.acc;
    p.acc_stderr = s.acc_stderr;
    p.acc_norm = s.acc_norm;
    p.acc_norm_stderr = s.acc_norm_stderr;
    p.n = s.n;
    p.n_truncated = s.n_truncated;
    p.kv_bytes_peak = s.kv_bytes_peak;
    p.seconds = s.seconds;
  });
  r.metric = "acc";
  r.source = task.name;
  r.num_fewshot = base.num_fewshot;
  return r;
}

nlohmann::json to_json(const SweepResult& r) {
  nlohmann::json pts = nlohmann::json::array();
  for (const SweepPoint& p : r.points) {
    nlohmann::json j = {{"policy", p.policy},
                        {"kv_type", kv_type_name(p.type)},
                        {"budget", p.budget},
                        {"budget_value", p.budget_value},
                        {"n", p.n},
                        {"kv_bytes_peak", p.kv_bytes_peak},
                        {"seconds", p.seconds}};
    if (p.budget_slots >= 0) j["budget_slots"] = p.budget_slots;
    if (r.metric == "ppl") {
      j["ppl"] = num_or_null(p.ppl);
      j["mean_nll"] = num_or_null(p.mean_nll);
    } else {
      j["acc"] = num_or_null(p.acc);
      j["acc_stderr"] = num_or_null(p.acc_stderr);
      j["acc_norm"] = num_or_null(p.acc_norm);
      j["acc_norm_stderr"] = num_or_null(p.acc_norm_stderr);
      j["n_truncated"] = p.n_truncated;
    }
    if (!p.error.empty()) j["error"] = p.error;
    pts.push_back(std::move(j));
  }
  nlohmann::json j = {{"metric", r.metric},
                      {"model", r.model},
                      {"source", r.source},
                      {"budget_unit", r.percent ? "percent" : "slots"},
                      {"prefill_chunk", r.base.prefill_chunk},
                      {"kv_recent", r.base.recent ? r.base.recent->to_string() : "budget/2"},
                      {"kv_sinks", r.base.sinks},
                      {"kv_seed", r.base.seed},
                      {"kv_positions", kv_positions_name(r.base.positions)},
                      {"points", pts}};
  if (r.metric == "ppl") j["ctx"] = r.ctx;
  else j["num_fewshot"] = r.num_fewshot;
  return j;
}

std::string to_csv(const SweepResult& r) {
  const bool ppl = r.metric == "ppl";
  std::string s =
      ppl ? "policy,kv_type,budget,budget_slots,ppl,mean_nll,n_tokens,kv_bytes_peak,seconds,error\n"
          : "policy,kv_type,budget,acc,acc_stderr,acc_norm,acc_norm_stderr,n_items,n_truncated,kv_bytes_peak,seconds,"
            "error\n";
  for (const SweepPoint& p : r.points) {
    // Errors are single-line messages; commas and quotes are the only CSV hazards.
    std::string err = p.error;
    std::replace(err.begin(), err.end(), '"', '\'');
    if (!err.empty()) err = "\"" + err + "\"";
    if (ppl) {
      s += fmt::format("{},{},{},{},{},{},{},{},{:.3f},{}\n", p.policy, kv_type_name(p.type), p.budget,
                       p.budget_slots >= 0 ? std::to_string(p.budget_slots) : "", csv_num(p.ppl), csv_num(p.mean_nll),
                       p.n, p.kv_bytes_peak, p.seconds, err);
    } else {
      s += fmt::format("{},{},{},{},{},{},{},{},{},{},{:.3f},{}\n", p.policy, kv_type_name(p.type), p.budget,
                       csv_num(p.acc), csv_num(p.acc_stderr), csv_num(p.acc_norm), csv_num(p.acc_norm_stderr), p.n,
                       p.n_truncated, p.kv_bytes_peak, p.seconds, err);
    }
  }
  return s;
}

std::string describe_point(const std::string& metric, const SweepPoint& p) {
  std::string s = p.policy == "full" ? "full" : fmt::format("{} {}", p.policy, p.budget);
  if (p.type != KvType::F32) s += fmt::format(" {}", kv_type_name(p.type));
  if (!p.error.empty()) return s + ": skipped: " + p.error;
  if (metric == "ppl") s += fmt::format(": ppl {:.4f}", p.ppl);
  else s += fmt::format(": acc {:.4f}  acc_norm {:.4f}", p.acc, p.acc_norm);
  if (p.budget_slots >= 0 && p.policy != "full") s += fmt::format(" ({} slots)", p.budget_slots);
  return s + fmt::format("  kv_bytes_peak {}  {:.1f} s", p.kv_bytes_peak, p.seconds);
}

std::string format_table(const SweepResult& r) {
  std::vector<std::string> budgets, policies;  // policies: the table's rows (line_of)
  for (const SweepPoint& p : r.points) {
    if (p.policy != "full" && std::find(budgets.begin(), budgets.end(), p.budget) == budgets.end())
      budgets.push_back(p.budget);
    if (std::find(policies.begin(), policies.end(), line_of(r, p)) == policies.end()) policies.push_back(line_of(r, p));
  }
  auto find = [&](const std::string& line, const std::string& budget) -> const SweepPoint* {
    for (const SweepPoint& p : r.points) {
      if (line_of(r, p) == line && (p.policy == "full" || p.budget == budget)) return &p;
    }
    return nullptr;
  };
  const std::vector<std::string> metrics = r.metric == "ppl" ? std::vector<std::string>{"ppl"}
                                                             : std::vector<std::string>{"acc", "acc_norm"};
  size_t w = 8;  // the first column fits the longest row name ("random q8")
  for (const std::string& line : policies) w = std::max(w, line.size());
  std::string s;
  for (const std::string& m : metrics) {
    s += fmt::format("| {:<{}} |", m, w);
    for (const std::string& b : budgets) s += fmt::format(" {:>8} |", b);
    s += fmt::format("\n|{}|", std::string(w + 2, '-'));
    for (size_t i = 0; i < budgets.size(); ++i) s += "----------|";
    s += "\n";
    for (const std::string& policy : policies) {
      s += fmt::format("| {:<{}} |", policy, w);
      for (const std::string& b : budgets) {
        const SweepPoint* p = find(policy, b);
        const double v = p ? metric_of(*p, m) : NAN;
        s += std::isfinite(v) ? fmt::format(" {:>8.4f} |", v) : fmt::format(" {:>8} |", p ? "n/a" : "");
      }
      s += "\n";
    }
    if (budgets.empty()) {
      for (const std::string& policy : policies) {
        const SweepPoint* p = find(policy, "");
        if (p) s += fmt::format("{} {}: {:.4f}\n", policy, p->budget, metric_of(*p, m));
      }
    }
    s += "\n";
  }
  return s;
}

std::vector<std::string> write_sweep(const SweepResult& r, const std::string& out_dir, bool plots) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail("{}: cannot create output directory: {}", out_dir, ec.message());
  std::vector<std::string> written;
  write_text(out_dir + "/sweep.csv", to_csv(r), written);
  write_text(out_dir + "/sweep.json", to_json(r).dump(2) + "\n", written);
  if (!plots) return written;
  const std::vector<std::string> metrics = r.metric == "ppl" ? std::vector<std::string>{"ppl"}
                                                             : std::vector<std::string>{"acc", "acc_norm"};
  for (const std::string& m : metrics) {
    const plot::Figure f = plot::render(metric_plot(r, m), out_dir, "sweep-" + m);
    for (const std::string& p : {f.svg, f.png, f.script, f.data}) written.push_back(p);
  }
  return written;
}

}  // namespace h2o
