// `h2o tokenize` through the real binary: a sample of every golden file's lines (the
// library test covers all of them) for each vocabulary and source, the output formats,
// --no-bos / --special, and clear errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

using Ids = std::vector<int32_t>;

struct Line {
  std::string text;
  Ids ids, ids_with_special;
};

// Lines spread over the file, plus every line spelling a special token; none with NUL
// (arguments cannot carry it).
std::vector<Line> sample(const std::string& vocab, size_t every) {
  const std::string all = read_text_file(shared_path("models/families/tokenizer-" + vocab + ".jsonl"));
  std::vector<Line> out;
  size_t pos = 0;
  for (size_t i = 0; pos < all.size(); ++i) {
    const size_t end = all.find('\n', pos);
    const auto j = nlohmann::json::parse(all.substr(pos, end - pos));
    pos = end == std::string::npos ? all.size() : end + 1;
    Line l{j["text"], j["ids"], {}};
    l.ids_with_special = j.contains("ids_with_special") ? j["ids_with_special"].get<Ids>() : l.ids;
    const bool special = l.text.find("<|") != std::string::npos;
    if ((i % every == 0 || special) && l.text.find('\0') == std::string::npos) out.push_back(l);
  }
  return out;
}

Ids json_ids(const CliResult& r) { return nlohmann::json::parse(r.out)["ids"].get<Ids>(); }

struct Source {
  const char* vocab;
  const char* model;
};

class TokenizeCli : public ::testing::TestWithParam<Source> {};

TEST_P(TokenizeCli, SampledGoldenLines) {
  const std::string model = shared_path(std::string("models/families/") + GetParam().model);
  const std::vector<Line> lines = sample(GetParam().vocab, 41);
  ASSERT_GE(lines.size(), 9u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    const auto r = run_cli({"tokenize", "-m", model, "-p", l.text, "--special", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json_ids(r), l.ids_with_special) << l.text;
    if (i % 3 == 0) {
      const auto nb = run_cli({"tokenize", "-m", model, "-p", l.text, "--special", "--no-bos", "--json"});
      ASSERT_EQ(nb.exit_code, 0) << nb.err;
      EXPECT_EQ(json_ids(nb), l.ids) << l.text;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizeCli,
                         ::testing::Values(Source{"llama3", "llama3-tiny.gguf"}, Source{"llama3", "llama-tiny"},
                                           Source{"qwen2", "qwen2-tiny.gguf"}, Source{"gpt2", "neox-tiny.gguf"},
                                           Source{"gpt2", "neox-tiny"}, Source{"opt", "opt-tiny"}),
                         [](const auto& info) {
                           std::string name = std::string(info.param.vocab) + "_" + info.param.model;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(TokenizeCliFormat, TextAndJsonOutput) {
  const std::string llama3 = shared_path("models/families/llama3-tiny.gguf");
  const auto t = run_cli({"tokenize", "-m", llama3, "-p", "Hello world"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.out, "128000 -> '<|begin_of_text|>'\n  9906 -> 'Hello'\n  1917 -> ' world'\n");

  // Special-token text is text unless --special; pieces are the bytes of each token
  // (an incomplete UTF-8 piece shows as U+FFFD in JSON).
  const auto plain = run_cli({"tokenize", "-m", llama3, "-p", "<|eot_id|>\xF0\x9F\x8E\x89", "--json", "--no-bos"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto j = nlohmann::json::parse(plain.out);
  EXPECT_GT(j["ids"].size(), 3u);
  EXPECT_EQ(j["ids"].size(), j["pieces"].size());
  EXPECT_EQ(j["pieces"][0], "<");
  const auto special = run_cli({"tokenize", "-m", llama3, "-p", "<|eot_id|>", "--json", "--special", "--no-bos"});
  EXPECT_EQ(nlohmann::json::parse(special.out), (nlohmann::json{{"ids", {128009}}, {"pieces", {"<|eot_id|>"}}}));

  // A llama2.c checkpoint with its tokenizer.bin, and text from a file.
  const auto l2c = run_cli({"tokenize", "-m", model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin"),
                            "-p", "Once upon a time", "--json"});
  ASSERT_EQ(l2c.exit_code, 0) << l2c.err;
  EXPECT_EQ(json_ids(l2c), (Ids{1, 403, 407, 261, 378}));
  const auto file = run_cli({"tokenize", "-m", model_path("stories260K-f32.gguf"), "-f",
                             shared_path("models/families/opt-tiny/config.json"), "--json", "--stats"});
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_GT(json_ids(file).size(), 10u);
  EXPECT_NE(file.err.find("vocabulary loaded in"), std::string::npos) << file.err;
}

TEST(TokenizeCliFormat, Errors) {
  const std::string gguf = shared_path("models/families/neox-tiny.gguf");
  EXPECT_EQ(run_cli({"tokenize", "-p", "x"}).exit_code, 2);
  EXPECT_EQ(run_cli({"tokenize", "-m", gguf}).exit_code, 2);
  EXPECT_EQ(run_cli({"tokenize", "-m", gguf, "-p", "x", "-f", "y"}).exit_code, 2);
  const auto missing = run_cli({"tokenize", "-m", "/nonexistent.gguf", "-p", "x"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent.gguf"), std::string::npos) << missing.err;
  const auto l2c = run_cli({"tokenize", "-m", model_path("stories260K.bin"), "-p", "x"});
  EXPECT_EQ(l2c.exit_code, 1);
  EXPECT_NE(l2c.err.find("needs --tokenizer"), std::string::npos) << l2c.err;
  // A model file whose tokenizer is not one h2o knows.
  const auto weights =
      run_cli({"tokenize", "-m", shared_path("models/families/opt-tiny/model.safetensors"), "-p", "x"});
  EXPECT_EQ(weights.exit_code, 1);
}

}  // namespace
}  // namespace h2o::test
