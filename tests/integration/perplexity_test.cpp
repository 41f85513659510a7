// Perplexity: quantized files within the tolerances of F32, and `h2o perplexity`
// through the real binary (JSON fields, per-token NLLs, budgets, bad input).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "integration/run_cli.h"
#include "model/model.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

// 16 windows of the model's 512-token context: enough for a stable estimate, quick
// enough for the sanitizer build.
constexpr size_t kTokens = 16 * 511;

double ppl_of(const std::string& file) {
  auto model = Model::load({model_path(file), ""});
  auto tokens = model->tokenizer().encode(read_text_file(shared_path("data/tinystories-valid.txt")), false);
  tokens.resize(kTokens);
  PerplexityOptions opts;
  const PerplexityResult r = perplexity(model, tokens, opts);
  EXPECT_EQ(r.n_tokens, kTokens);
  EXPECT_EQ(r.nll.size(), kTokens);
  return r.ppl;
}

TEST(Perplexity, QuantizedFilesStayWithinToleranceOfF32) {
  const double f32 = ppl_of("stories260K-f32.gguf");
  EXPECT_GT(f32, 3.0);
  EXPECT_LT(f32, 7.0);  // the models README: full-cache ppl of order 4.8
  EXPECT_LT(std::fabs(ppl_of("stories260K-f16.gguf") / f32 - 1.0), 0.001);
  EXPECT_LT(std::fabs(ppl_of("stories260K-bf16.gguf") / f32 - 1.0), 0.01);
  EXPECT_LT(std::fabs(ppl_of("stories260K-q8_0.gguf") / f32 - 1.0), 0.02);
  EXPECT_LT(std::fabs(ppl_of("stories260K-q4_0.gguf") / f32 - 1.0), 0.10);
}

TEST(Perplexity, Books4MQ8IsWithinToleranceOfF32) {
  auto run = [](const std::string& file) {
    auto model = Model::load({model_path(file), ""});
    auto tokens = model->tokenizer().encode(read_text_file(shared_path("data/austen-pride-and-prejudice.txt")), false);
    tokens.resize(2 * 511);
    return perplexity(model, tokens, {}).ppl;
  };
  const double f32 = run("books4M-f32.gguf");
  EXPECT_LT(f32, 40.0);
  EXPECT_LT(std::fabs(run("books4M-q8_0.gguf") / f32 - 1.0), 0.02);
}

nlohmann::json ppl_cli(std::vector<std::string> extra) {
  std::vector<std::string> args = {"perplexity", "-m", model_path("stories260K-f32.gguf"), "-f",
                                   shared_path("data/tinystories-valid.txt"), "--max-tokens", "1000", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST(PerplexityCli, JsonHasTheDocumentedFields) {
  const auto j = ppl_cli({"--per-token", "--ctx", "128"});
  EXPECT_EQ(j["n_tokens"], 1000);
  EXPECT_EQ(j["nll"].size(), 1000u);
  EXPECT_EQ(j["n_windows"], 8);  // ceil(1000 / 127)
  double sum = 0;
  for (double v : j["nll"]) sum += v;
  EXPECT_NEAR(sum / 1000.0, j["mean_nll"].get<double>(), 1e-9);
  EXPECT_NEAR(std::exp(j["mean_nll"].get<double>()), j["ppl"].get<double>(), 1e-9);
  for (const char* k : {"kv_bytes_peak", "policy", "budget", "recent", "sinks", "tokens_per_s"}) EXPECT_TRUE(j.contains(k)) << k;
}

TEST(PerplexityCli, WholePromptPrefillUnderABudgetEqualsFull) {
  // With the whole window as one step, attention is full and eviction happens once at its
  // end (the spec's reference setting), so every token's NLL equals full's.
  const auto full = ppl_cli({"--per-token", "--ctx", "200"});
  const auto h2o = ppl_cli({"--per-token", "--ctx", "200", "--kv-policy", "h2o", "--kv-budget", "20%"});
  EXPECT_EQ(full["nll"], h2o["nll"]);
  EXPECT_EQ(h2o["budget"], 40);
  EXPECT_EQ(h2o["recent"], 20);
}

TEST(PerplexityCli, BudgetsPerTokenPrefillCostQualityAndMemory) {
  const auto full = ppl_cli({"--ctx", "256", "--prefill-chunk", "1"});
  const auto h2o = ppl_cli({"--ctx", "256", "--prefill-chunk", "1", "--kv-policy", "h2o", "--kv-budget", "10%"});
  EXPECT_GT(h2o["ppl"].get<double>(), full["ppl"].get<double>());
  EXPECT_LT(h2o["kv_bytes_peak"].get<size_t>() * 5, full["kv_bytes_peak"].get<size_t>());
}

TEST(PerplexityCli, BadInputGivesAClearError) {
  const std::string m = model_path("stories260K-f32.gguf");
  const std::string f = shared_path("data/tinystories-valid.txt");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"perplexity", "-m", m, "-f", "/nonexistent.txt"}, "/nonexistent.txt"},
      {{"perplexity", "-m", m, "-f", f, "--ctx", "1"}, "--ctx"},
      {{"perplexity", "-m", m, "-f", f, "--ctx", "4096"}, "--ctx"},
      {{"perplexity", "-m", m, "-f", f, "--kv-policy", "window", "--kv-budget", "0%"}, "--kv-budget"},
      {{"perplexity", "-m", m}, "--file"},
  };
  for (const auto& [args, expect] : cases) {
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args.back();
    EXPECT_LT(r.exit_code, 128) << args.back();
    EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace h2o::test
