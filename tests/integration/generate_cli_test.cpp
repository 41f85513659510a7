// End-to-end tests of `h2o generate` through the real binary: the byte-exact golden text,
// JSON output, and clear errors for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

const std::vector<std::string> kGreedy = {"-p", "Once upon a time", "-n", "252", "--temp", "0"};

std::vector<std::string> generate_args(std::vector<std::string> model_args, std::vector<std::string> extra = kGreedy) {
  std::vector<std::string> a = {"generate"};
  a.insert(a.end(), model_args.begin(), model_args.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(GenerateCli, GoldenGreedyTextFromF32Gguf) {
  const auto r = run_cli(generate_args({"-m", model_path("stories260K-f32.gguf")}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_text_file(model_path("stories260K.greedy.txt")));
  EXPECT_NE(r.err.find("generated 252 tok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kv "), std::string::npos) << r.err;
}

TEST(GenerateCli, GoldenGreedyTextFromLlama2cCheckpoint) {
  const auto r = run_cli(generate_args({"-m", model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin")}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_text_file(model_path("stories260K.greedy.txt")));
}

TEST(GenerateCli, GoldenGreedyTextFromF16Gguf) {
  const auto r = run_cli(generate_args({"-m", model_path("stories260K-f16.gguf")}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_text_file(model_path("stories260K.greedy.txt")));
}

TEST(GenerateCli, GoldenTextWithTwoThreadsAndChunkedPrefill) {
  const auto r = run_cli(generate_args({"-m", model_path("stories260K-f32.gguf"), "-t", "2", "--prefill-chunk", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_text_file(model_path("stories260K.greedy.txt")));
}

TEST(GenerateCli, JsonOutputHasTokensTimingsAndKvBytes) {
  auto args = generate_args({"-m", model_path("stories260K-f32.gguf")}, {"-p", "Once upon a time", "-n", "20", "--temp", "0", "--json"});
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], nlohmann::json({1, 403, 407, 261, 378}));
  EXPECT_EQ(j["tokens"].size(), 20u);
  EXPECT_EQ(j["n_generated"], 20);
  const std::string golden = read_text_file(model_path("stories260K.greedy.txt"));
  const std::string text = j["prompt"].get<std::string>() + j["text"].get<std::string>();
  EXPECT_EQ(golden.substr(0, text.size()), text);
  EXPECT_GT(j["kv_bytes"].get<size_t>(), 0u);
  EXPECT_TRUE(j["timings"].contains("decode_tokens_per_s"));
}

TEST(GenerateCli, SampledOutputIsReproducibleForASeed) {
  auto args = generate_args({"-m", model_path("stories260K-f32.gguf")},
                            {"-p", "Once upon a time", "-n", "40", "--temp", "0.9", "--top-k", "40", "--top-p", "0.9",
                             "--seed", "7"});
  const auto a = run_cli(args), b = run_cli(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  args.back() = "8";
  EXPECT_NE(run_cli(args).out, a.out);
}

TEST(GenerateCli, EveryQuantizedFileGeneratesText) {
  for (const char* name : {"stories260K-bf16.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"}) {
    const auto r = run_cli(generate_args({"-m", model_path(name)}, {"-p", "Once upon a time", "-n", "60", "--temp", "0"}));
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_GT(r.out.size(), 150u) << name;
    EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << name;
  }
}

struct BadArgs {
  std::vector<std::string> args;
  std::string expect_in_err;
};

TEST(GenerateCli, BadInputGivesOneLineErrorAndNonZeroExit) {
  const std::string m = model_path("stories260K-f32.gguf");
  const std::vector<BadArgs> cases = {
      {{"generate", "-m", "/nonexistent/model.gguf", "-p", "x"}, "/nonexistent/model.gguf"},
      {{"generate", "-m", shared_path("models"), "-p", "x"}, "not a Hugging Face model directory"},
      {{"generate", "-m", model_path("stories260K.bin"), "-p", "x"}, "--tokenizer"},
      {{"generate", "-m", m, "-n", "-5"}, "-n"},
      {{"generate", "-m", m, "-n", "abc"}, "-n"},
      {{"generate", "-m", m, "--temp", "-1"}, "--temp"},
      {{"generate", "-m", m, "--top-p", "1.5"}, "--top-p"},
      {{"generate", "-m", m, "-t", "0"}, "-t"},
      {{"generate", "-m", m, "--kv-policy", "lru", "--kv-budget", "8"}, "unknown policy"},
      {{"generate", "-m", m, "--kv-policy", "h2o"}, "--kv-budget"},
      {{"generate", "-m", m, "--kv-policy", "h2o", "--kv-budget", "0"}, "--kv-budget"},
      {{"generate", "-m", m, "--kv-policy", "h2o", "--kv-budget", "-3"}, "--kv-budget"},
      {{"generate", "-m", m, "--kv-policy", "h2o", "--kv-budget", "ten"}, "--kv-budget"},
      {{"generate", "-m", m, "--kv-policy", "h2o", "--kv-budget", "150%"}, "--kv-budget"},
      {{"generate", "-m", m, "--kv-policy", "h2o", "--kv-budget", "16", "--kv-recent", "32"}, "--kv-recent"},
      {{"generate", "-m", m, "--kv-policy", "sink", "--kv-budget", "4", "--kv-sinks", "4"}, "--kv-sinks"},
      {{"generate", "-m", m, "--prefill-chunk", "-2"}, "--prefill-chunk"},
      {{"generate", "-m", m, "--kv-type", "q3"}, "--kv-type"},
      {{"generate", "-m", m, "--kv-positions", "foo"}, "--kv-positions"},
      {{"generate", "-m", m, "--bogus-flag"}, "bogus"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect_in_err), std::string::npos) << joined << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

// Unknown KV storage types and position modes are flag errors on every command that takes
// KV flags: exit 2, one line naming the flag and the choices.
TEST(GenerateCli, HostileKvTypeAndPositionsExitTwoEverywhere) {
  const std::string m = model_path("stories260K-f32.gguf");
  const std::string f = shared_path("data/tinystories-valid.txt");
  const std::vector<std::vector<std::string>> commands = {
      {"generate", "-m", m, "-p", "x"},
      {"perplexity", "-m", m, "-f", f},
      {"eval", "copa", "-m", m},
      {"batch", "-m", m, "-f", f},
      {"serve", "-m", m},
      {"bench", "-m", m},
      {"bench", "--throughput", "-m", m},
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--kv-type", "q3"}, "--kv-type"},
      {{"--kv-type", "F32"}, "--kv-type"},
      {{"--kv-positions", "foo"}, "--kv-positions"},
      {{"--kv-positions", ""}, "--kv-positions"}};
  for (const auto& cmd : commands) {
    for (const auto& [flag, expect] : bad) {
      std::vector<std::string> args = cmd;
      args.insert(args.end(), flag.begin(), flag.end());
      const auto r = run_cli(args);
      EXPECT_EQ(r.exit_code, 2) << cmd[0] << " " << flag[1] << "\n" << r.err;
      EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
      EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;  // the error and CLI11's --help hint
    }
  }
  const auto sweep = run_cli({"sweep", "-m", m, "--perplexity", f, "--kv-types", "f32,q3"});
  EXPECT_EQ(sweep.exit_code, 2) << sweep.err;
  EXPECT_NE(sweep.err.find("--kv-types"), std::string::npos) << sweep.err;
}

TEST(GenerateCli, HelpOnEverySubcommand) {
  for (const char* sub : {"generate", "perplexity", "inspect"}) {
    const auto r = run_cli({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("--"), std::string::npos) << sub;
  }
}

TEST(GenerateCli, StopsAtTheContextLengthWithANotice) {
  const auto r = run_cli(generate_args({"-m", model_path("stories260K-f32.gguf")},
                                       {"-p", "Once upon a time", "-n", "2000", "--temp", "0", "--ignore-eos", "--kv-policy",
                                        "h2o", "--kv-budget", "64", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["stop_reason"], "context");
  // 512 positions are fed; the token sampled from the last one is printed but never fed.
  EXPECT_EQ(j["n_prompt"].get<int>() + j["n_generated"].get<int>(), 512 + 1);
  const auto text = run_cli(generate_args({"-m", model_path("stories260K-f32.gguf")},
                                          {"-p", "Once upon a time", "-n", "2000", "--temp", "0", "--ignore-eos"}));
  EXPECT_NE(text.err.find("notice: stopped at the model's context length (512 tokens)"), std::string::npos) << text.err;
}

// Issue 3's memory acceptance: under h2o the KV bytes stop growing at the budget; under
// full they grow with the sequence.
TEST(GenerateCli, KvBytesAreFlatUnderH2oAndGrowUnderFull) {
  auto trace = [](const std::string& policy) {
    std::vector<std::string> extra = {"-p", "Once upon a time", "-n", "480", "--temp", "0", "--ignore-eos",
                                      "--kv-policy", policy, "--json", "--kv-trace"};
    if (policy != "full") extra.insert(extra.end(), {"--kv-budget", "64"});
    const auto r = run_cli(generate_args({"-m", model_path("stories260K-f32.gguf")}, extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["kv_bytes_trace"].get<std::vector<size_t>>();
  };
  const auto h2o = trace("h2o");
  ASSERT_EQ(h2o.size(), 479u);  // one entry per fed generated token
  EXPECT_EQ(h2o[99], h2o[478]);
  EXPECT_EQ(h2o.front(), h2o.back());
  const auto full = trace("full");
  ASSERT_EQ(full.size(), 479u);
  EXPECT_GT(full[478], 4 * full[99]);
  // Linear growth: bytes per token constant up to the 16-slot allocation page.
  const double per_token_early = static_cast<double>(full[199] - full[99]) / 100.0;
  const double per_token_late = static_cast<double>(full[478] - full[299]) / 179.0;
  EXPECT_NEAR(per_token_late / per_token_early, 1.0, 0.1);
  EXPECT_LT(h2o.back() * 5, full.back());
}

}  // namespace
}  // namespace h2o::test
