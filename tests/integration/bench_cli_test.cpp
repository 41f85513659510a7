// End-to-end tests of `h2o bench` and `h2o synth` through the real binary: sane JSON
// figures on stories260K with tiny sizes, the context cap, the bandwidth probe, and clear
// errors for bad flag values.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

// One thread and two repetitions unless `extra` says otherwise.
std::vector<std::string> bench_args(std::vector<std::string> extra, const std::string& reps = "2") {
  std::vector<std::string> a = {"bench", "-m", model_path("stories260K-f32.gguf"), "-t", "1", "--reps", reps};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

void expect_positive_spread(const nlohmann::json& j, const char* key) {
  ASSERT_TRUE(j.contains(key) && j[key].is_object()) << key;
  EXPECT_GT(j[key]["min"].get<double>(), 0.0) << key;
  EXPECT_LE(j[key]["min"].get<double>(), j[key]["median"].get<double>()) << key;
  EXPECT_LE(j[key]["median"].get<double>(), j[key]["max"].get<double>()) << key;
  EXPECT_EQ(j[key]["values"].size(), j["reps"].get<size_t>()) << key;
}

TEST(BenchCli, JsonHasPositiveSpeedsKvBytesAndRss) {
  const auto r = run_cli(bench_args({"-p", "16", "-n", "8", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_prompt"], 16);
  EXPECT_EQ(j["n_gen"], 8);
  EXPECT_EQ(j["n_gen_capped"], false);
  EXPECT_EQ(j["reps"], 2);
  expect_positive_spread(j, "prefill_tokens_per_s");
  expect_positive_spread(j, "decode_tokens_per_s");
  expect_positive_spread(j, "ttft_ms");
  expect_positive_spread(j, "decode_gb_per_s");
  expect_positive_spread(j, "kv_read_bytes_per_token");
  EXPECT_GT(j["kv_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(j["kv_bytes_peak"].get<uint64_t>(), j["kv_bytes"].get<uint64_t>());
  EXPECT_GT(j["peak_rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(j["weight_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(j["weight_bytes_per_token"].get<uint64_t>(), j["weight_bytes"].get<uint64_t>());
  EXPECT_FALSE(j.contains("bandwidth"));
}

TEST(BenchCli, BoundedPolicyKeepsKvBytesBelowFull) {
  const auto full = run_cli(bench_args({"-p", "64", "-n", "8", "--json"}));
  // Per-token prefill: the bounded cache then holds budget + 1 slots (whole-prompt prefill
  // would size it at budget + prompt).
  const auto h2o = run_cli(
      bench_args({"-p", "64", "-n", "8", "--kv-policy", "h2o", "--kv-budget", "16", "--prefill-chunk", "1", "--json"}));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  ASSERT_EQ(h2o.exit_code, 0) << h2o.err;
  const auto jf = nlohmann::json::parse(full.out), jh = nlohmann::json::parse(h2o.out);
  EXPECT_EQ(jh["kv"]["policy"], "h2o");
  EXPECT_EQ(jh["kv"]["budget"], 16);
  EXPECT_LT(jh["kv_bytes"].get<uint64_t>(), jf["kv_bytes"].get<uint64_t>());
  EXPECT_LT(jh["kv_read_bytes_per_token"]["median"].get<double>(),
            jf["kv_read_bytes_per_token"]["median"].get<double>());
}

TEST(BenchCli, DecodeIsCappedAtTheContextLength) {
  const auto r = run_cli(bench_args({"-p", "508", "-n", "20", "--json"}, "1"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_gen"], 4);  // stories260K's context is 512
  EXPECT_EQ(j["n_gen_requested"], 20);
  EXPECT_EQ(j["n_gen_capped"], true);
  EXPECT_NE(r.err.find("capped"), std::string::npos) << r.err;
}

TEST(BenchCli, TableAndBandwidthProbe) {
  const auto r = run_cli(bench_args({"-p", "8", "-n", "4", "--bandwidth", "--bandwidth-mib", "24"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"prefill tok/s", "decode tok/s", "time to first token", "peak RSS", "% of triad", "triad"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  const auto probe = run_cli({"bench", "--bandwidth", "--bandwidth-mib", "24", "-t", "1", "--reps", "2", "--json"});
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  const auto j = nlohmann::json::parse(probe.out);
  EXPECT_GT(j["triad_gb_per_s"].get<double>(), 0.0);
  for (const char* k : {"copy", "scale", "add", "triad"})
    EXPECT_GT(j["kernels"][k]["gb_per_s"].get<double>(), 0.0) << k;
}

TEST(BenchCli, BadFlagValuesGiveClearErrors) {
  constexpr int kParseError = -1;  // CLI11's own status: not 0 or 1, below 128
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    const char* message;
  };
  const Case cases[] = {
      {bench_args({"-p", "0"}), kParseError, "--n-prompt"},
      {bench_args({"-n", "-1"}), kParseError, "--n-gen"},
      {bench_args({}, "0"), kParseError, "--reps"},
      {bench_args({"-p", "100000"}), 1, "context length 512"},
      {bench_args({"--kv-policy", "nope"}), 1, "nope"},
      {bench_args({"--kv-policy", "h2o"}), 1, "budget"},
      {{"bench", "-p", "8"}, 1, "-m/--model is required"},
      {{"bench", "-m", "/nonexistent.gguf"}, 1, "/nonexistent.gguf"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    if (c.exit_code == kParseError) {
      EXPECT_TRUE(r.exit_code > 1 && r.exit_code < 128) << c.message << ": " << r.exit_code << " " << r.err;
    } else {
      EXPECT_EQ(r.exit_code, c.exit_code) << c.message << ": " << r.err;
    }
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

TEST(SynthCli, TinyShapeBenchesAndBadNamesFail) {
  const std::string path = ::testing::TempDir() + "h2o_synth_cli_tiny.gguf";
  const auto s = run_cli({"synth", "--shape", "tiny", "--type", "q8_0", "-o", path});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.err.find("wrote"), std::string::npos) << s.err;
  const auto b = run_cli({"bench", "-m", path, "-p", "8", "-n", "4", "--reps", "1", "-t", "1", "--json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_GT(nlohmann::json::parse(b.out)["decode_tokens_per_s"]["median"].get<double>(), 0.0);
  std::filesystem::remove(path);

  const auto bad_shape = run_cli({"synth", "--shape", "gpt5", "-o", path});
  EXPECT_EQ(bad_shape.exit_code, 1);
  EXPECT_NE(bad_shape.err.find("unknown shape 'gpt5'"), std::string::npos) << bad_shape.err;
  const auto bad_type = run_cli({"synth", "--shape", "tiny", "--type", "q7_k", "-o", path});
  EXPECT_EQ(bad_type.exit_code, 1);
  EXPECT_NE(bad_type.err.find("unknown tensor type 'q7_k'"), std::string::npos) << bad_type.err;
  EXPECT_FALSE(std::filesystem::exists(path));
  const auto list = run_cli({"synth", "--list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("tinyllama-1.1b"), std::string::npos);
}

}  // namespace
}  // namespace h2o::test
