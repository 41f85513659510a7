// `h2o quantize` as a user runs it: a mix written and then loaded by `h2o perplexity`,
// --dry-run's plan, and one-line errors with the documented exit codes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "format/gguf.h"
#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_quantize_cli_" + name; }

TEST(QuantizeCli, DryRunPrintsThePlanAndWritesNothing) {
  const std::string out = temp_path("dry.gguf");
  const CliResult r = run_cli({"quantize", model_path("books4M-f32.gguf"), out, "q4_k_m", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("blk.0.ffn_down.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fallback: 688 values per row"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Q6_K"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits per weight"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
  // IN TYPE is enough with --dry-run.
  const CliResult r2 = run_cli({"quantize", model_path("books4M-f32.gguf"), "Q5_0", "--dry-run"});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_NE(r2.out.find("Q5_0"), std::string::npos);
}

TEST(QuantizeCli, WritesAFileThatPerplexityRuns) {
  const std::string out = temp_path("q5_k_m.gguf");
  const CliResult q = run_cli({"quantize", model_path("books4M-f32.gguf"), out, "Q5_K_M", "-t", "2"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const CliResult inspect = run_cli({"inspect", out});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("Q5_K x"), std::string::npos) << inspect.out;
  const CliResult p = run_cli({"perplexity", "-m", out, "-f", shared_path("data/austen-pride-and-prejudice-flat.txt"),
                               "--max-tokens", "300", "--json"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("\"ppl\""), std::string::npos) << p.out;
  std::filesystem::remove(out);
}

TEST(QuantizeCli, BadInputIsAOneLineError) {
  const CliResult t = run_cli({"quantize", model_path("books4M-f32.gguf"), temp_path("x.gguf"), "q9_z"});
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("unknown quantization type 'q9_z'"), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("Q4_K_M"), std::string::npos) << t.err;
  const CliResult missing = run_cli({"quantize", model_path("books4M-f32.gguf")});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  const CliResult requant = run_cli({"quantize", model_path("books4M-q8_0.gguf"), temp_path("r.gguf"), "q4_0"});
  EXPECT_EQ(requant.exit_code, 1);
  EXPECT_NE(requant.err.find("--allow-requantize"), std::string::npos) << requant.err;
  EXPECT_FALSE(std::filesystem::exists(temp_path("r.gguf")));
  const CliResult nofile = run_cli({"quantize", temp_path("missing.gguf"), temp_path("o.gguf"), "q8_0"});
  EXPECT_EQ(nofile.exit_code, 1);
  EXPECT_EQ(nofile.err.find('\n'), nofile.err.size() - 1) << nofile.err;
}

// A corrupt block (NaN super-scales in every K-quant block of one matrix) gives NaN
// results or an error, never a crash.
TEST(QuantizeCli, NaNScalesNeverCrash) {
  const std::string path = temp_path("nan.gguf");
  ASSERT_EQ(run_cli({"quantize", model_path("books4M-f32.gguf"), path, "q4_k_m"}).exit_code, 0);
  uint64_t at = 0, bytes = 0;
  {
    const GgufFile g = GgufFile::open(path);
    const GgufTensor* t = g.find_tensor("blk.1.attn_q.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->type, TensorType::Q4_K);
    at = g.data_offset() + t->offset;
    bytes = t->n_bytes;
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const char nan16[4] = {'\xFF', '\x7F', '\xFF', '\x7F'};  // d and dmin: fp16 NaN
    for (uint64_t b = 0; b < bytes; b += 144) {
      f.seekp(static_cast<std::streamoff>(at + b));
      f.write(nan16, 4);
    }
  }
  const CliResult p = run_cli({"perplexity", "-m", path, "-f", shared_path("data/austen-pride-and-prejudice-flat.txt"),
                               "--max-tokens", "100"});
  EXPECT_TRUE(p.exit_code == 0 || p.exit_code == 1) << p.exit_code << " " << p.err;
  const CliResult g = run_cli({"generate", "-m", path, "-p", "It is a truth", "-n", "8", "--temp", "0"});
  EXPECT_TRUE(g.exit_code == 0 || g.exit_code == 1) << g.exit_code << " " << g.err;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace h2o::test
