// `h2o sweep` through the real binary: a tiny perplexity grid writes CSV/JSON with one row
// per grid point and a figure, full's perplexity equals `h2o perplexity`'s, bad grids are
// one-line errors; the task path runs a tiny COPA grid.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "h2o_sweep_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

std::vector<std::string> ppl_args(const std::string& out_dir, const std::string& policies = "full,window,h2o",
                                  const std::string& budgets = "10%,50%") {
  return {"sweep", "-m", model_path("stories260K-f32.gguf"), "--perplexity", shared_path("data/tinystories-valid.txt"),
          "--max-tokens", "600", "--ctx", "128", "--policies", policies, "--budgets", budgets,
          "--out-dir", out_dir, "-t", "1"};
}

double perplexity_of(std::vector<std::string> extra) {
  std::vector<std::string> args = {"perplexity", "-m", model_path("stories260K-f32.gguf"), "-f",
                                   shared_path("data/tinystories-valid.txt"), "--max-tokens", "600", "--ctx", "128",
                                   "--json", "-t", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out)["ppl"].get<double>();
}

TEST(SweepCli, PerplexityGridWritesTablesAndFigure) {
  const std::string dir = fresh_dir("ppl");
  const auto r = run_cli(ppl_args(dir));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One progress line per grid point: full once + 2 policies x 2 budgets.
  EXPECT_EQ(lines(r.err), 5u) << r.err;
  EXPECT_NE(r.err.find("sweep [5/5]"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("| h2o"), std::string::npos) << r.out;

  const std::string csv = read_text_file(dir + "/sweep.csv");
  EXPECT_EQ(lines(csv), 1u + 5u) << csv;
  EXPECT_EQ(csv.rfind("policy,kv_type,budget,budget_slots,ppl,", 0), 0u) << csv;
  const auto j = nlohmann::json::parse(read_text_file(dir + "/sweep.json"));
  EXPECT_EQ(j["metric"], "ppl");
  EXPECT_EQ(j["ctx"], 128);
  EXPECT_EQ(j["prefill_chunk"], 1);
  ASSERT_EQ(j["points"].size(), 5u);
  EXPECT_EQ(j["points"][0]["policy"], "full");
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["n"], 600);
    EXPECT_GT(p["ppl"].get<double>(), 1.0);
    EXPECT_GT(p["kv_bytes_peak"].get<double>(), 0.0);
    EXPECT_TRUE(p.contains("seconds"));
  }
  // 10% of a 128-token window is 13 slots; a smaller budget means a smaller peak.
  EXPECT_EQ(j["points"][1]["policy"], "window");
  EXPECT_EQ(j["points"][1]["budget"], "10%");
  EXPECT_EQ(j["points"][1]["budget_slots"], 13);
  EXPECT_LT(j["points"][1]["kv_bytes_peak"].get<double>(), j["points"][0]["kv_bytes_peak"].get<double>());

  // full equals `h2o perplexity` at the same prefill chunk exactly, and whole-prompt
  // prefill up to rounding.
  const double full = j["points"][0]["ppl"].get<double>();
  EXPECT_EQ(full, perplexity_of({"--prefill-chunk", "1"}));
  EXPECT_NEAR(full, perplexity_of({}), 1e-4 * full);
  // A bounded point equals `h2o perplexity` with the same settings.
  EXPECT_EQ(j["points"][4]["policy"], "h2o");
  EXPECT_EQ(j["points"][4]["ppl"].get<double>(),
            perplexity_of({"--prefill-chunk", "1", "--kv-policy", "h2o", "--kv-budget", "50%"}));

  EXPECT_NE(read_text_file(dir + "/sweep-ppl.svg").find("<svg"), std::string::npos);
  EXPECT_EQ(read_text_file(dir + "/sweep-ppl.png").substr(0, 4), "\x89PNG");
}

TEST(SweepCli, JsonOutputAndFullOnlyGrid) {
  const std::string dir = fresh_dir("json");
  auto args = ppl_args(dir, "full");  // a one-point grid
  args.insert(args.end(), {"--json", "--no-plots"});
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["points"].size(), 1u);
  EXPECT_EQ(j["points"][0]["budget"], "100%");
  EXPECT_FALSE(std::filesystem::exists(dir + "/sweep-ppl.svg"));
}

TEST(SweepCli, BadGridsAreOneLineErrors) {
  const std::string dir = fresh_dir("bad");
  auto with = [&](std::vector<std::string> extra, const std::string& policies = "full,window,h2o",
                  const std::string& budgets = "10%,50%") {
    auto args = ppl_args(dir, policies, budgets);
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  };
  auto r = with({}, "full,lru");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown policy 'lru'"), std::string::npos) << r.err;
  r = with({}, "full,window", "10%,64");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--budgets"), std::string::npos) << r.err;
  r = with({"--task", "copa"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("either --perplexity"), std::string::npos) << r.err;
  r = with({"--kv-policy", "h2o"});  // the grid sets the policy: not a sweep flag
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--kv-policy"), std::string::npos) << r.err;
}

TEST(SweepCli, SinkBudgetTooSmallIsRecordedAndTheSweepGoesOn) {
  const std::string dir = fresh_dir("sink");
  // Token counts: a percentage below the sink count is capped (kv_config), a count is an error.
  auto args = ppl_args(dir, "sink,window", "3,64");
  args.push_back("--no-plots");
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_text_file(dir + "/sweep.json"));
  ASSERT_EQ(j["points"].size(), 4u);
  EXPECT_EQ(j["budget_unit"], "slots");
  EXPECT_TRUE(j["points"][0].contains("error"));  // 3 slots <= 4 sinks
  EXPECT_TRUE(j["points"][0]["ppl"].is_null());
  EXPECT_FALSE(j["points"][1].contains("error"));
  EXPECT_NE(r.err.find("skipped"), std::string::npos) << r.err;
}

TEST(SweepCli, TaskGridReportsAccuracy) {
  const std::string dir = fresh_dir("task");
  const auto r = run_cli({"sweep", "-m", model_path("stories260K-f32.gguf"), "--task", "copa", "--data-dir",
                          shared_path("data/eval"), "--limit", "8", "--policies", "full,h2o", "--budgets", "50%",
                          "--out-dir", dir, "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_text_file(dir + "/sweep.json"));
  EXPECT_EQ(j["metric"], "acc");
  ASSERT_EQ(j["points"].size(), 2u);
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["n"], 8);
    EXPECT_GE(p["acc"].get<double>(), 0.0);
    EXPECT_LE(p["acc"].get<double>(), 1.0);
    EXPECT_GE(p["acc_norm"].get<double>(), 0.0);
  }
  EXPECT_EQ(lines(read_text_file(dir + "/sweep.csv")), 3u);
  // Matches `h2o eval` on the same items and settings.
  const auto e = run_cli({"eval", "copa", "-m", model_path("stories260K-f32.gguf"), "--data-dir",
                          shared_path("data/eval"), "--limit", "8", "--json", "--prefill-chunk", "1", "-t", "1"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out)["acc"], j["points"][0]["acc"]);
  for (const char* fig : {"sweep-acc.svg", "sweep-acc_norm.svg"})
    EXPECT_NE(read_text_file(dir + "/" + fig).find("<svg"), std::string::npos) << fig;
}

}  // namespace
}  // namespace h2o::test
