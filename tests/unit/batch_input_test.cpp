// `h2o batch` prompt files (runtime/batch_input.h): plain and JSONL lines, per-line
// settings over the defaults, and a clear per-line error for every field of the wrong
// type or out of range (never a wrapped or truncated value).
#include <gtest/gtest.h>

#include "runtime/batch_input.h"

namespace h2o {
namespace {

PromptSpec line(const std::string& text) {
  PromptSpec d;
  d.n_predict = 16;
  d.kv.policy = "h2o";
  d.kv.budget = BudgetSpec::parse("32", "--kv-budget");
  d.kv.recent = BudgetSpec::parse("8", "--kv-recent");
  return parse_prompt_line(text, d);
}

TEST(BatchInput, SplitsPlainAndJsonlFiles) {
  const PromptSpec d;
  const auto plain = parse_prompt_file("one\r\n\n  \ntwo\nthree", false, d);
  ASSERT_EQ(plain.size(), 3u);
  EXPECT_EQ(plain[0].prompt, "one");
  EXPECT_EQ(plain[2].prompt, "three");
  const auto jsonl = parse_prompt_file("{\"prompt\":\"a\"}\n\n{\"prompt\":\"b\",\"id\":7}\nnot json\n", true, d);
  ASSERT_EQ(jsonl.size(), 3u);
  EXPECT_EQ(jsonl[1].id, 7);
  EXPECT_NE(jsonl[2].error.find("invalid JSON"), std::string::npos);
}

TEST(BatchInput, FieldsOverrideTheDefaults) {
  const PromptSpec p = line(
      R"({"prompt":"x","max_tokens":5,"temp":0.5,"top_k":3,"top_p":0.9,"seed":18446744073709551615,"ignore_eos":true})");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.n_predict, 5);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 3);
  EXPECT_EQ(p.sampling.seed, 18446744073709551615ull);
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_EQ(p.kv.policy, "h2o");
  // Another policy keeps the budget but not the recent split; full drops both.
  const PromptSpec w = line(R"({"prompt":"x","kv_policy":"window"})");
  EXPECT_EQ(w.kv.budget->value, 32);
  EXPECT_FALSE(w.kv.recent);
  const PromptSpec f = line(R"({"prompt":"x","kv_policy":"full"})");
  EXPECT_EQ(f.error, "");
  EXPECT_FALSE(f.kv.budget);
}

TEST(BatchInput, BadFieldsAreLineErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt":"x","max_tokens":1e30})", "must be an integer"},
      {R"({"prompt":"x","max_tokens":-1})", "must be in [0,"},
      {R"({"prompt":"x","max_tokens":99999999999})", "must be at most 2147483647"},
      {R"({"prompt":"x","top_k":"3"})", "must be an integer"},
      {R"({"prompt":"x","seed":-1})", "seed"},
      {R"({"prompt":"x","seed":1.5})", "seed"},
      {R"({"prompt":"x","temperature":1e300})", "finite"},
      {R"({"prompt":"x","ignore_eos":1})", "true or false"},
      {R"({"prompt":"x","kv_policy":"full","kv_budget":8})", "kv_budget: not used by policy full"},
      {R"({"prompt":"x","kv_policy":3})", "kv_policy"},
      {R"({"prompt":"x","kv_budget":[1]})", "kv_budget"},
      {R"({"prompt":5})", "missing string field 'prompt'"},
      {R"([1,2])", "expected a JSON object"},
  };
  for (const auto& [text, message] : cases) {
    const PromptSpec p = line(text);
    EXPECT_NE(p.error.find(message), std::string::npos) << text << " -> " << p.error;
  }
  const std::string deep = "{\"prompt\":\"x\",\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(line(deep).error.find("nested more than"), std::string::npos);
}

}  // namespace
}  // namespace h2o
