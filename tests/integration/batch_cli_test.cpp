// End-to-end tests of `h2o batch` and `h2o bench --throughput` through the real binary:
// batched results equal `h2o generate` per prompt, in input order; per-prompt JSONL
// settings and per-prompt errors; the throughput comparison stays within its KV cap.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

std::string write_temp(const std::string& name, const std::string& content) {
  const auto path =
      std::filesystem::temp_directory_path() / ("h2o_batch_test_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << content;
  return path.string();
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

std::string generate_text(const std::string& prompt, const std::vector<std::string>& kv) {
  std::vector<std::string> a = {
      "generate", "-m",    model_path("stories260K-f32.gguf"), "-p", prompt, "-n", "40", "--temp", "0", "-t",
      "1",        "--json"};
  a.insert(a.end(), kv.begin(), kv.end());
  const auto r = run_cli(a);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out)["text"].get<std::string>();
}

TEST(BatchCli, EveryPromptMatchesGenerateInInputOrder) {
  const std::vector<std::string> prompts = {
      "Once upon a time", "Lily had a red ball and a",
      "The dog",          "Tom and Sue went to the park to play. They saw a big tree and",
      "One day",          "The sun was hot"};
  std::string file;
  for (const auto& p : prompts) file += p + "\n\n";  // blank lines are skipped
  const std::string path = write_temp("prompts.txt", file);
  const std::vector<std::string> kv = {"--kv-policy", "h2o", "--kv-budget", "24", "--kv-recent", "8"};
  std::vector<std::string> a = {
      "batch",      "-m", model_path("stories260K-f32.gguf"), "-f", path, "-n", "40", "--temp", "0", "-t", "1",
      "--parallel", "4"};
  a.insert(a.end(), kv.begin(), kv.end());
  const auto r = run_cli(a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("batch: 6 prompts (0 failed)"), std::string::npos) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(lines[i]["index"], i);
    EXPECT_EQ(lines[i]["prompt"], prompts[i]);
    EXPECT_EQ(lines[i]["text"].get<std::string>(), generate_text(prompts[i], kv)) << prompts[i];
    EXPECT_GT(lines[i]["kv_bytes_peak"].get<uint64_t>(), 0u);
  }
  std::filesystem::remove(path);
}

TEST(BatchCli, JsonlSettingsPerPromptAndErrorsPerLine) {
  const std::string path =
      write_temp("prompts.jsonl",
                 "{\"prompt\": \"Once upon a time\", \"id\": \"a\", \"max_tokens\": 7, \"ignore_eos\": true}\n"
                 "{\"prompt\": 5}\n"
                 "not json at all\n"
                 "{\"prompt\": \"The cat\", \"kv_policy\": \"bogus\"}\n"
                 "{\"prompt\": \"The cat\", \"kv_policy\": \"window\", \"kv_budget\": \"50%\", \"temperature\": 0}\n");
  const std::string out = write_temp("out.jsonl", "");
  const auto r = run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", path, "-o", out, "-t", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("3 of 5 prompts failed"), std::string::npos) << r.err;
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto lines = json_lines(ss.str());
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["id"], "a");
  EXPECT_EQ(lines[0]["n_generated"], 7);
  EXPECT_EQ(lines[0]["stop_reason"], "length");
  EXPECT_NE(lines[1]["error"].get<std::string>().find("prompt"), std::string::npos);
  EXPECT_NE(lines[2]["error"].get<std::string>().find("invalid JSON"), std::string::npos);
  EXPECT_NE(lines[3]["error"].get<std::string>().find("bogus"), std::string::npos);
  EXPECT_EQ(lines[4]["kv_policy"], "window budget 50%");
  EXPECT_FALSE(lines[4].contains("error"));
  std::filesystem::remove(path);
  std::filesystem::remove(out);
}

// kv_type / kv_positions per prompt: the same text as `generate` with the flags; values of
// the wrong JSON type or unknown names fail that line alone.
TEST(BatchCli, JsonlKvTypeAndPositionsPerPrompt) {
  const std::string path =
      write_temp("kvmodes.jsonl",
                 "{\"prompt\": \"Once upon a time\", \"kv_policy\": \"h2o\", \"kv_budget\": 16, \"kv_type\": \"q8\", "
                 "\"kv_positions\": \"cache\", \"max_tokens\": 40, \"temperature\": 0}\n"
                 "{\"prompt\": \"The dog\", \"kv_type\": 8}\n"
                 "{\"prompt\": \"The dog\", \"kv_type\": \"q3\"}\n"
                 "{\"prompt\": \"The dog\", \"kv_positions\": \"foo\"}\n"
                 "{\"prompt\": \"The dog\", \"kv_positions\": [\"cache\"]}\n");
  const auto r = run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", path, "-t", "1"});
  EXPECT_EQ(r.exit_code, 1);
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_FALSE(lines[0].contains("error")) << lines[0].dump();
  EXPECT_EQ(lines[0]["kv_type"], "q8");
  EXPECT_EQ(lines[0]["kv_positions"], "cache");
  EXPECT_EQ(lines[0]["text"].get<std::string>(),
            generate_text("Once upon a time",
                          {"--kv-policy", "h2o", "--kv-budget", "16", "--kv-type", "q8", "--kv-positions", "cache"}));
  for (size_t i = 1; i < 5; ++i) {
    const std::string err = lines[i]["error"].get<std::string>();
    EXPECT_NE(err.find(i < 3 ? "kv_type" : "kv_positions"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  std::filesystem::remove(path);
}

TEST(BatchCli, PromptLongerThanContextFailsAloneAndBadFlagsAreRefused) {
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += "Lily went to the park. ";
  const std::string path = write_temp("long.txt", "Once upon a time\n" + long_prompt + "\nThe dog\n");
  const auto r =
      run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", path, "-n", "5", "-t", "1", "--temp", "0"});
  EXPECT_EQ(r.exit_code, 1);
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["n_generated"], 5);
  EXPECT_NE(lines[1]["error"].get<std::string>().find("longer than the model's context length"), std::string::npos);
  EXPECT_EQ(lines[2]["n_generated"], 5);
  const auto missing = run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", "/nonexistent/prompts.txt"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("cannot open"), std::string::npos) << missing.err;
  const auto empty =
      run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", write_temp("empty.txt", "\n\n")});
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_NE(empty.err.find("no prompts"), std::string::npos) << empty.err;
  std::filesystem::remove(path);
  // Flag validation errors exit 2 (CLI11's own codes are folded into it) and name the flag.
  const auto zero = run_cli({"batch", "-m", model_path("stories260K-f32.gguf"), "-f", path, "--parallel", "0"});
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("--parallel"), std::string::npos) << zero.err;
  const auto unknown = run_cli({"batch", "--no-such-flag"});
  EXPECT_EQ(unknown.exit_code, 2);
}

TEST(BenchCli, ThroughputComparesFullAndH2oWithinTheKvCap) {
  const auto r = run_cli({"bench", "--throughput", "-m", model_path("stories260K-f32.gguf"), "-p", "200", "-n", "60",
                          "--kv-memory", "4MiB", "-t", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["kv"]["policy"], "full");
  EXPECT_EQ(j[1]["kv"]["policy"], "h2o");
  // 20% of 260 tokens = 52 slots, 10% recent = 26.
  EXPECT_EQ(j[1]["kv"]["budget"], 52);
  EXPECT_EQ(j[1]["kv"]["recent"], 26);
  for (const auto& x : j) {
    EXPECT_TRUE(x["batch_fitted_to_cap"].get<bool>());
    EXPECT_LE(x["kv_bytes_peak"].get<uint64_t>(), x["kv_bytes_planned"].get<uint64_t>());
    EXPECT_LE(x["kv_bytes_planned"].get<uint64_t>(), 4u << 20);
    EXPECT_EQ(x["generated_tokens"].get<uint64_t>(), x["batch"].get<uint64_t>() * 60);
    EXPECT_GT(x["tokens_per_s"].get<double>(), 0.0);
#if !H2O_UNDER_ASAN
    // Peak RSS within the cap + the weights + the documented overhead (docs/benchmarks.md:
    // the process itself, activations and logits scratch): 64 MiB is far more than it is.
    EXPECT_LE(x["peak_rss_bytes"].get<uint64_t>(), (4u << 20) + x["weight_bytes"].get<uint64_t>() + (64u << 20));
#endif
  }
  // A fifth of the cache per sequence: several times the sequences fit.
  EXPECT_GE(j[1]["batch"].get<int>(), 3 * j[0]["batch"].get<int>());
  const auto bad = run_cli({"bench", "--throughput", "-m", model_path("stories260K-f32.gguf"), "--kv-memory", "lots"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--kv-memory"), std::string::npos) << bad.err;
  const auto tiny = run_cli({"bench", "--throughput", "-m", model_path("stories260K-f32.gguf"), "-p", "200", "-n", "60",
                             "--kv-memory", "1KiB"});
  EXPECT_NE(tiny.exit_code, 0);
  EXPECT_NE(tiny.err.find("one sequence needs"), std::string::npos) << tiny.err;
}

// --rounds alternates the settings and reports each one's median round, every round's
// tokens/s beside it (JSON and text); a count out of range is refused by name.
TEST(BenchCli, ThroughputRoundsReportEachSettingsMedianRound) {
  const std::vector<std::string> args = {"bench",       "--throughput",
                                         "-m",          model_path("stories260K-f32.gguf"),
                                         "-p",          "60",
                                         "-n",          "20",
                                         "--kv-memory", "4MiB",
                                         "-t",          "1",
                                         "--rounds",    "3"};
  std::vector<std::string> json_args = args;
  json_args.push_back("--json");
  const auto r = run_cli(json_args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  for (const auto& x : j) {
    ASSERT_EQ(x["rounds"], 3);
    auto v = x["tokens_per_s_rounds"].get<std::vector<double>>();
    ASSERT_EQ(v.size(), 3u);
    std::sort(v.begin(), v.end());
    EXPECT_EQ(x["tokens_per_s"].get<double>(), v[1]);
    EXPECT_EQ(x["generated_tokens"].get<uint64_t>(), x["batch"].get<uint64_t>() * 20);
  }
  // One line per run on stderr: three rounds of two settings. The text table is followed by
  // the rounds of each setting.
  size_t runs = 0;
  for (size_t at = r.err.find(" tok/s\n"); at != std::string::npos; at = r.err.find(" tok/s\n", at + 1)) ++runs;
  EXPECT_EQ(runs, 6u) << r.err;
  const auto text = run_cli(args);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("tok/s by round"), std::string::npos) << text.out;
  // One round (the default) adds nothing to the JSON.
  const auto one = run_cli({"bench", "--throughput", "-m", model_path("stories260K-f32.gguf"), "-p", "60", "-n", "20",
                            "--kv-memory", "4MiB", "-t", "1", "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_FALSE(nlohmann::json::parse(one.out)[0].contains("tokens_per_s_rounds"));
  const auto zero = run_cli({"bench", "--throughput", "-m", model_path("stories260K-f32.gguf"), "--rounds", "0"});
  EXPECT_NE(zero.exit_code, 0);
  EXPECT_NE(zero.err.find("--rounds"), std::string::npos) << zero.err;
}

}  // namespace
}  // namespace h2o::test
