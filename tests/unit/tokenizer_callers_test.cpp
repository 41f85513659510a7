// Callers of the tokenizer that used to assume a BOS: lm-eval-style requests on
// vocabularies with (Llama 3) and without (Qwen2) a BOS, and the end-of-generation stop.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "eval/tasks.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace h2o {
namespace {

using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> family(const char* model) {
  return load_tokenizer_for_model(test::shared_path(std::string("models/families/") + model));
}

TEST(TokenizerCallersTest, ScoredRequestsWithAndWithoutBos) {
  const auto qwen = family("qwen2-tiny.gguf");
  const Ids whole = qwen->encode("The cat sat", false);
  const Ids ctx = qwen->encode("The cat", false);
  ScoredRequest r = build_request(*qwen, "The cat", " sat", 1000);
  EXPECT_EQ(r.tokens, whole);  // nothing before the text
  EXPECT_EQ(r.n_cont, whole.size() - ctx.size());
  // No context: EOS (lm-eval's prefix token) gives the continuation's first token a predictor.
  r = build_request(*qwen, "", "Hello world", 1000);
  ASSERT_FALSE(r.tokens.empty());
  EXPECT_EQ(r.tokens.front(), 151645);
  EXPECT_EQ(r.n_cont, r.tokens.size() - 1);
  // Cut to 3 tokens: the first one left is context for the rest, never scored.
  r = build_request(*qwen, "", "one two three four five", 3);
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.n_cont, 2u);
  r = build_request(*qwen, "Some context here", " one two three four", 3);
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_LE(r.n_cont, 2u);
  EXPECT_TRUE(r.truncated);

  const auto llama3 = family("llama3-tiny.gguf");
  r = build_request(*llama3, "The cat", " sat", 1000);
  EXPECT_EQ(r.tokens.front(), 128000);
  EXPECT_EQ(r.tokens.size(), llama3->encode("The cat sat", false).size() + 1);
}

TEST(TokenizerCallersTest, EndOfGenerationReplacesEosOrBos) {
  // SentencePiece (llama2.c) vocabularies keep ending a story at BOS, as run.c does.
  const auto stories = load_tokenizer_for_model(test::model_path("stories260K-f32.gguf"));
  EXPECT_TRUE(stories->is_end_of_generation(1));
  EXPECT_TRUE(stories->is_end_of_generation(2));
  EXPECT_FALSE(stories->is_end_of_generation(0));
  // Llama 3 does not stop at its BOS, Qwen at its BOS id only because it is <|endoftext|>.
  EXPECT_FALSE(family("llama3-tiny.gguf")->is_end_of_generation(128000));
  EXPECT_TRUE(family("qwen2-tiny.gguf")->is_end_of_generation(151643));
}

}  // namespace
}  // namespace h2o
