// Every model family through every command that takes a model, as a user runs them: the
// fixture GGUFs of llama (Llama 3 vocabulary), qwen2 and gptneox, and the Hugging Face
// directories of OPT and Llama. generate (greedy, bounded H2O cache), perplexity, eval,
// batch and serve (chat rendered with the family's template, its control tokens parsed).
// Numerical agreement with references is tests/unit/model_families_test.cpp's job; here
// each command must run, report KV bytes and stay within its budget.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "integration/run_cli.h"
#include "integration/serve_harness.h"

namespace h2o::test {
namespace {

using nlohmann::json;

struct Family {
  std::string name;           // test name
  std::string path;           // under shared/models/families
  std::string chat_template;  // --chat-template for serve ("" = the model's own or plain)
};

std::ostream& operator<<(std::ostream& o, const Family& f) { return o << f.path; }

std::string family(const Family& f) { return shared_path("models/families/" + f.path); }

class FamiliesCli : public ::testing::TestWithParam<Family> {};

TEST_P(FamiliesCli, GenerateUnderABoundedCache) {
  const CliResult r = run_cli({"generate", "-m", family(GetParam()), "-p", "The quick brown fox", "-n", "24", "--temp",
                               "0", "--kv-policy", "h2o", "--kv-budget", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_GT(j["n_generated"].get<int>(), 0) << r.out;
  // Every sequence past 8 tokens holds 8 slots: the peak equals the final size.
  EXPECT_GT(j["kv_bytes"].get<int64_t>(), 0);
  if (j["n_prompt"].get<int>() + j["n_generated"].get<int>() > 9)
    EXPECT_EQ(j["kv_bytes"].get<int64_t>(), j["kv_bytes_peak"].get<int64_t>()) << r.out;
}

TEST_P(FamiliesCli, PerplexityOnRealText) {
  const CliResult r = run_cli({"perplexity", "-m", family(GetParam()), "-f", shared_path("data/tinystories-valid.txt"),
                               "--ctx", "64", "--max-tokens", "120", "--kv-policy", "window", "--kv-budget", "16",
                               "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const double ppl = j["ppl"].get<double>();
  // Random weights: near the vocabulary size, never NaN or below 1.
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << r.out;
  // 120 scored tokens after BOS; vocabularies that add no BOS (qwen2, GPT-NeoX) start each
  // window from the token before it, so the text's first token is never scored.
  EXPECT_GE(j["n_tokens"].get<int>(), 119) << r.out;
  EXPECT_LE(j["n_tokens"].get<int>(), 120) << r.out;
}

TEST_P(FamiliesCli, EvalAndBatch) {
  const CliResult e = run_cli(
      {"eval", "copa", "-m", family(GetParam()), "--data-dir", shared_path("data/eval"), "--limit", "4", "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_TRUE(json::parse(e.out).contains("acc")) << e.out;

  const std::string prompts = ::testing::TempDir() + "h2o_families_" + std::to_string(::getpid()) + "_" +
                              GetParam().name + ".txt";
  {
    std::ofstream(prompts) << "Once upon a time\nThe capital of France is\n";
  }
  const CliResult b = run_cli({"batch", "-m", family(GetParam()), "-f", prompts, "-n", "6", "--temp", "0",
                               "--parallel", "2", "--kv-policy", "sink", "--kv-budget", "6", "--kv-type", "q8"});
  std::filesystem::remove(prompts);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::istringstream lines(b.out);
  std::string line;
  int n = 0;
  for (; std::getline(lines, line); ++n) {
    const json j = json::parse(line);
    EXPECT_FALSE(j.contains("error")) << line;
    EXPECT_GT(j["kv_bytes"].get<int64_t>(), 0) << line;
  }
  EXPECT_EQ(n, 2) << b.out;
}

TEST_P(FamiliesCli, ServeChatWithTheFamilysTemplate) {
  const Family& f = GetParam();
  std::vector<std::string> extra = {"--parallel", "2"};
  if (!f.chat_template.empty()) extra.insert(extra.end(), {"--chat-template", f.chat_template});
  ServeProcess s(extra, "families/" + f.path);
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const json body = {{"messages", {{{"role", "user"}, {"content", "Say hello."}}}},
                     {"max_tokens", 8},
                     {"temperature", 0},
                     {"kv_policy", "h2o"},
                     {"kv_budget", 16}};
  auto c = s.client();
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_GT(j["usage"]["completion_tokens"].get<int>(), 0) << r->body;
  if (f.chat_template == "chatml" || f.chat_template == "llama3") {
    // The template's control tokens are single tokens: the prompt is shorter than the same
    // text tokenized as plain text (where "<|im_start|>" is several tokens).
    const std::string rendered = f.chat_template == "chatml"
                                     ? "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
                                     : "<|start_header_id|>user<|end_header_id|>\n\nSay hello.<|eot_id|>"
                                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    const CliResult plain = run_cli({"tokenize", "-m", family(f), "-p", rendered, "--json"});
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    const size_t plain_n = json::parse(plain.out)["ids"].size();
    EXPECT_LT(j["usage"]["prompt_tokens"].get<size_t>(), plain_n) << r->body;
  }
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST_P(FamiliesCli, Inspect) {
  const CliResult r = run_cli({"inspect", family(GetParam()), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const bool dir = std::filesystem::is_directory(family(GetParam()));
  EXPECT_EQ(j["format"], dir ? "hf" : "gguf");
  EXPECT_GT(j["tensors"].size(), 10u);
  uint64_t params = 0;
  for (const json& t : j["tensors"]) params += t["n_elements"].get<uint64_t>();
  EXPECT_EQ(j["total_params"].get<uint64_t>(), params);
  if (dir) {  // config.json's fields are the metadata
    bool has_model_type = false;
    for (const json& m : j["metadata"]) has_model_type |= m["key"] == "model_type";
    EXPECT_TRUE(has_model_type) << r.out.substr(0, 500);
  }
}

TEST(FamiliesCliErrors, InspectOfADirectoryWithoutConfigIsNamed) {
  const CliResult r = run_cli({"inspect", shared_path("models")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a Hugging Face model directory"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Families, FamiliesCli,
                         ::testing::Values(Family{"llama3", "llama3-tiny.gguf", "llama3"},
                                           Family{"qwen2", "qwen2-tiny.gguf", "chatml"},
                                           Family{"neox", "neox-tiny.gguf", ""},
                                           Family{"opt_hf", "opt-tiny", ""},
                                           Family{"llama_hf", "llama-tiny", "llama3"}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace h2o::test
