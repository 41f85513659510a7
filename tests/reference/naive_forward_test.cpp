// The engine's forward pass against the naive double-precision LLaMA (reference/
// naive_llama.h), which reads the llama2.c checkpoint itself. Full cache only here; the
// eviction policies are held to the reference in kv_policy_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fixtures/family_refs.h"
#include "reference/naive_llama.h"
#include "reference/ref_test_util.h"

namespace h2o {
namespace {

using ref::NaiveKvReference;
using ref::NaiveLlama;
using ref::NaivePolicy;
using ref::Vec;
using test::model_path;

TEST(NaiveForward, ReadsCheckpointHeaders) {
  const auto& s = test::naive_model("stories260K.bin").config();
  EXPECT_EQ(s.dim, 64);
  EXPECT_EQ(s.hidden_dim, 172);
  EXPECT_EQ(s.n_layers, 5);
  EXPECT_EQ(s.n_heads, 8);
  EXPECT_EQ(s.n_kv_heads, 4);
  EXPECT_EQ(s.vocab_size, 512);
  EXPECT_EQ(s.seq_len, 512);
  EXPECT_TRUE(s.shared_classifier);
  const auto& b = test::naive_model("books4M.bin").config();
  EXPECT_EQ(b.dim, 256);
  EXPECT_EQ(b.hidden_dim, 688);
  EXPECT_EQ(b.n_layers, 6);
  EXPECT_EQ(b.n_heads, 8);
  EXPECT_EQ(b.n_kv_heads, 4);
  EXPECT_EQ(b.vocab_size, 512);
  EXPECT_EQ(b.seq_len, 512);
  EXPECT_THROW(NaiveLlama(model_path("no-such-model.bin")), std::runtime_error);
}

// The reference itself against llama2.c's run.c: greedy decoding from "Once upon a time"
// reproduces stories260K.greedy.txt. (Only the tokenizer is the engine's.)
TEST(NaiveForward, GreedyReproducesLlama2cRunC) {
  auto model = test::stories_bin();
  const ref::NaiveModel& naive = test::naive_model("stories260K.bin");
  std::ifstream in(model_path("stories260K.greedy.txt"), std::ios::binary);
  std::string expected((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(expected.empty());
  if (expected.back() == '\n') expected.pop_back();  // run.c's own final newline

  std::vector<int32_t> tokens = model->tokenizer().encode("Once upon a time", true);
  ASSERT_EQ(tokens.size(), 5u);  // BOS + 4
  NaiveKvReference gen(naive, NaivePolicy{});
  std::vector<Vec> lp = gen.step(tokens);
  while (tokens.size() < 257) {
    const Vec& last = lp.back();
    const int32_t next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    tokens.push_back(next);
    const int32_t one[1] = {next};
    lp = gen.step(one);
  }
  const std::string text = model->tokenizer().decode(std::span<const int32_t>(tokens).subspan(1), tokens[0]);
  EXPECT_EQ(text, expected);
}

// Two drivers of the reference agree: the KV reference under `full` (stepped in chunks)
// and the static causal mask; and `window` stepped one token at a time equals the
// sliding-window mask kpos >= qpos - B.
TEST(NaiveForward, KvReferenceDriversAgree) {
  auto model = test::stories_bin();
  const ref::NaiveModel& naive = test::naive_model("stories260K.bin");
  const auto tokens = test::text_tokens(*model, 120);
  std::vector<Vec> causal;
  for (const Vec& z : naive.logits_causal(tokens)) causal.push_back(ref::log_softmax(std::span<const double>(z)));

  NaiveKvReference full(naive, NaivePolicy{});
  EXPECT_LT(test::max_abs_diff(full.run(tokens, ref::chunk_steps(120, 7)), causal), 1e-12);

  // Any policy whose budget covers the sequence is full attention.
  for (const char* p : {"window", "sink", "h2o", "tova", "random"}) {
    NaiveKvReference r(naive, NaivePolicy{p, 120, 60, 4, 1});
    EXPECT_LT(test::max_abs_diff(r.run(tokens, ref::chunk_steps(120, 1)), causal), 1e-12) << p;
  }

  const int B = 16;
  NaiveKvReference win(naive, NaivePolicy{"window", B, 0, 0, 0});
  const auto stepped = win.run(tokens, ref::chunk_steps(120, 1));
  std::vector<Vec> masked;
  for (const Vec& z : naive.logits_with_mask(tokens, [&](int, int, int q, int k) { return k <= q && k >= q - B; }))
    masked.push_back(ref::log_softmax(std::span<const double>(z)));
  EXPECT_LT(test::max_abs_diff(stepped, masked), 1e-12);
  // And the window really changes the answer (the test above is not vacuous).
  EXPECT_GT(test::max_abs_diff(stepped, causal), 1e-3);
}

struct ForwardCase {
  const char* name;
  const char* engine_file;
  const char* tokenizer;  // "" for GGUF (vocab inside)
  const char* naive_file;
  const char* text;
  int n_tokens;
  int chunk;  // prefill chunk; 0 = the whole prompt in one step
};

void PrintTo(const ForwardCase& c, std::ostream* os) { *os << c.name << " chunk " << c.chunk; }

class NaiveForwardEngine : public ::testing::TestWithParam<ForwardCase> {};

// The engine (float32, full cache) against the naive forward's logits, with the prompt
// fed in one step and in chunks.
TEST_P(NaiveForwardEngine, LogitsMatch) {
  const ForwardCase& c = GetParam();
  const auto t0 = std::chrono::steady_clock::now();
  auto model = test::load_model_cached(model_path(c.engine_file), *c.tokenizer ? model_path(c.tokenizer) : "");
  const ref::NaiveModel& naive = test::naive_model(c.naive_file);
  ASSERT_EQ(model->config().vocab_size, naive.config().vocab_size);
  const auto tokens = test::text_tokens(*model, static_cast<size_t>(c.n_tokens), c.text);

  // The reference does not depend on the chunking; compute it once per (model, text).
  static std::map<std::string, std::vector<Vec>> ref_cache;
  const std::string key = std::string(c.naive_file) + "|" + c.text + "|" + std::to_string(c.n_tokens);
  if (!ref_cache.count(key)) ref_cache[key] = naive.logits_causal(tokens);
  const std::vector<Vec>& expected = ref_cache[key];

  SessionOptions opts;
  opts.kv.prefill_chunk = c.chunk;
  Session s(model, opts);
  const auto logits = test::feed_all(s, tokens, {static_cast<int>(tokens.size())});
  size_t worst_row = 0;
  const double diff = test::max_abs_diff(logits, expected, static_cast<size_t>(model->config().vocab_size), &worst_row);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ naive forward ] %-28s %3zu tokens chunk %d: max |dlogit| = %.3g (row %zu), %.2fs\n", c.name,
              tokens.size(), c.chunk, diff, worst_row, secs);
  EXPECT_LE(diff, 1e-4) << "worst at row " << worst_row;
}

std::string case_name(const ::testing::TestParamInfo<ForwardCase>& info) {
  return std::string(info.param.name) + "_chunk" + std::to_string(info.param.chunk);
}

constexpr const char* kStories = "data/tinystories-valid.txt";
constexpr const char* kAusten = "data/austen-pride-and-prejudice.txt";

INSTANTIATE_TEST_SUITE_P(
    Naive, NaiveForwardEngine,
    ::testing::Values(ForwardCase{"stories260K_bin", "stories260K.bin", "tok512.bin", "stories260K.bin", kStories, 300, 0},
                      ForwardCase{"stories260K_bin", "stories260K.bin", "tok512.bin", "stories260K.bin", kStories, 300, 1},
                      ForwardCase{"stories260K_bin", "stories260K.bin", "tok512.bin", "stories260K.bin", kStories, 300, 7},
                      ForwardCase{"stories260K_f32gguf", "stories260K-f32.gguf", "", "stories260K.bin", kStories, 300, 0},
                      ForwardCase{"stories260K_f32gguf", "stories260K-f32.gguf", "", "stories260K.bin", kStories, 300, 1},
                      ForwardCase{"stories260K_f32gguf", "stories260K-f32.gguf", "", "stories260K.bin", kStories, 300, 7},
                      ForwardCase{"books4M_f32gguf", "books4M-f32.gguf", "", "books4M.bin", kAusten, 100, 0},
                      ForwardCase{"books4M_f32gguf", "books4M-f32.gguf", "", "books4M.bin", kAusten, 100, 1},
                      ForwardCase{"books4M_f32gguf", "books4M-f32.gguf", "", "books4M.bin", kAusten, 100, 7},
                      ForwardCase{"books4M_bin", "books4M.bin", "tok512.bin", "books4M.bin", kAusten, 100, 0}),
    case_name);

// The model-family fixtures (../shared/models/families/): the naive references of llama
// (Llama 3 RoPE factors), qwen2, gptneox and OPT (its HF directory) against the fixtures' reference logits (which
// checks the naive code itself), then the engine against the naive reference over 200
// tokens of the `long` prompt, whole and in chunks of 7.
class NaiveFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(NaiveFamilies, ReferenceMatchesFixturesAndEngineMatchesReference) {
  const std::string name = GetParam();
  const std::string file = name == "opt-tiny" ? name : name + ".gguf";  // OPT: HF directory only
  const ref::NaiveModel& naive = test::naive_model("families/" + file);
  // The naive reference against the fixtures' last-position logits of the `short` prompt
  // (NeoX: the float64 oracle's exact-GELU file), within the fixtures' F32 tolerance.
  const test::FamilyRef short_ref = test::load_family_ref(name, "short");
  const std::vector<Vec> z = naive.logits_causal(short_ref.prompt_ids);
  const std::vector<float> want = test::load_npy_f32(
      test::family_path("refs/" + name + ".short." + (name == "neox-tiny" ? "last_logits.exact.npy" : "last_logits.npy")));
  ASSERT_EQ(want.size(), z.back().size());
  double ref_diff = 0.0;
  for (size_t j = 0; j < want.size(); ++j) ref_diff = std::max(ref_diff, std::abs(z.back()[j] - want[j]));
  std::printf("[ naive forward ] %-12s naive vs fixture logits: max |dlogit| = %.3g\n", name.c_str(), ref_diff);
  EXPECT_LE(ref_diff, 1e-3);

  // The engine against the naive reference.
  std::vector<int32_t> tokens = test::load_family_ref(name, "long").prompt_ids;
  tokens.resize(200);
  const std::vector<Vec> expected = naive.logits_causal(tokens);
  auto model = test::load_model_cached(test::family_path(file));
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  for (int chunk : {0, 7}) {
    SessionOptions opts;
    opts.kv.prefill_chunk = chunk;
    Session s(model, opts);
    const auto logits = test::feed_all(s, tokens, {static_cast<int>(tokens.size())});
    const double diff = test::max_abs_diff(logits, expected, V);
    std::printf("[ naive forward ] %-12s engine vs naive, chunk %d: max |dlogit| = %.3g\n", name.c_str(), chunk, diff);
    EXPECT_LE(diff, 1e-4) << "chunk " << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, NaiveFamilies, ::testing::Values("llama3-tiny", "qwen2-tiny", "neox-tiny", "opt-tiny"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
}  // namespace h2o
