// Model::load against metadata that does not describe the file (issue: inconsistent model
// metadata), and the architecture registry's errors: each is a one-line h2o::Error that
// names the key, tensor or architecture, never a model that runs on part of its layers.
// Also every registered architecture, synthesised small, loads and generates.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>

#include "common/error.h"
#include "format/gguf.h"
#include "model/architecture.h"
#include "model/model.h"
#include "model/synth.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace h2o {
namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_model_load_" + name; }

// A copy of `src` with its metadata edited: `edit` may change or add keys; keys it maps to
// nullopt are dropped. `keep_tensor` filters tensors.
std::string rewrite(const std::string& src, const std::string& name,
                    const std::function<void(GgufWriter&)>& add,
                    const std::function<bool(const std::string& key)>& drop_key = {},
                    const std::function<bool(const std::string& tensor)>& keep_tensor = {}) {
  const GgufFile f = GgufFile::open(src);
  GgufWriter w(f.alignment());
  for (const std::string& k : f.key_order()) {
    if (drop_key && drop_key(k)) continue;
    w.set(k, *f.find(k));
  }
  add(w);
  for (const GgufTensor& t : f.tensors()) {
    if (keep_tensor && !keep_tensor(t.name)) continue;
    w.add_tensor(t.name, t.ne, t.type, std::span(t.data, t.n_bytes));
  }
  const std::string path = temp_path(name);
  w.write(path);
  return path;
}

const std::string& stories() {
  static const std::string p = test::model_path("stories260K-f32.gguf");
  return p;
}

// The message of the Error that loading `path` throws ("" if it loads).
std::string load_error(const std::string& path) {
  try {
    Model::load({path, ""});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::function<bool(const std::string&)> is(const std::string& key) {
  return [key](const std::string& k) { return k == key; };
}

TEST(ModelLoad, BlockCountSmallerThanTheFileIsAnError) {
  // stories260K has 5 layers; a file saying 4 used to run on the first 4.
  const std::string p = rewrite(stories(), "bc4.gguf", [](GgufWriter& w) { w.set_u32("llama.block_count", 4); },
                                is("llama.block_count"));
  const std::string e = load_error(p);
  EXPECT_NE(e.find("unexpected tensor blk.4."), std::string::npos) << e;
}

TEST(ModelLoad, BlockCountLargerThanTheFileNamesTheMissingTensor) {
  const std::string p = rewrite(stories(), "bc6.gguf", [](GgufWriter& w) { w.set_u32("llama.block_count", 6); },
                                is("llama.block_count"));
  const std::string e = load_error(p);
  EXPECT_NE(e.find("missing tensor blk.5.attn_norm.weight"), std::string::npos) << e;
}

TEST(ModelLoad, UnknownTensorIsAnError) {
  const GgufFile f = GgufFile::open(stories());
  const GgufTensor* norm = f.find_tensor("output_norm.weight");
  const std::string p = rewrite(stories(), "extra.gguf", [&](GgufWriter& w) {
    w.add_tensor("blk.0.attn_sinks.weight", norm->ne, norm->type, std::span(norm->data, norm->n_bytes));
  });
  EXPECT_NE(load_error(p).find("unexpected tensor blk.0.attn_sinks.weight"), std::string::npos);
}

TEST(ModelLoad, NonFiniteOrNonPositiveHyperParametersAreRefusedByName) {
  for (const char* key : {"llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"}) {
    for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 0.0f, -1.0f}) {
      SCOPED_TRACE(std::string(key) + " = " + std::to_string(bad));
      const std::string p = rewrite(stories(), "hp.gguf", [&](GgufWriter& w) { w.set_f32(key, bad); }, is(key));
      const std::string e = load_error(p);
      EXPECT_NE(e.find(key), std::string::npos) << e;
      EXPECT_EQ(e.find('\n'), std::string::npos);
    }
  }
}

TEST(ModelLoad, SizesOutOfRangeAreRefusedByName) {
  for (uint32_t bad : {0u, 1u << 21, 0xFFFFFFFFu}) {
    const std::string p = rewrite(stories(), "size.gguf", [&](GgufWriter& w) { w.set_u32("llama.embedding_length", bad); },
                                  is("llama.embedding_length"));
    EXPECT_NE(load_error(p).find("llama.embedding_length"), std::string::npos) << bad;
  }
}

TEST(ModelLoad, UnsupportedArchitectureAndRopeScalingAreNamed) {
  std::string p = rewrite(stories(), "arch.gguf", [](GgufWriter& w) { w.set_string("general.architecture", "mamba"); },
                          is("general.architecture"));
  std::string e = load_error(p);
  EXPECT_NE(e.find("'mamba'"), std::string::npos) << e;
  EXPECT_NE(e.find("llama, qwen2, gptneox"), std::string::npos) << e;

  // Terminal escapes in the name are printed escaped.
  p = rewrite(stories(), "arch_esc.gguf",
              [](GgufWriter& w) { w.set_string("general.architecture", "x\x1b]0;pwned\x07\x1b[2J"); },
              is("general.architecture"));
  e = load_error(p);
  EXPECT_EQ(e.find('\x1b'), std::string::npos);
  EXPECT_NE(e.find("\\x1B"), std::string::npos) << e;

  p = rewrite(stories(), "yarn.gguf", [](GgufWriter& w) {
    w.set_string("llama.rope.scaling.type", "yarn");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
  });
  e = load_error(p);
  EXPECT_NE(e.find("'yarn'"), std::string::npos) << e;
  EXPECT_NE(e.find("supported: none, linear"), std::string::npos) << e;
}

TEST(ModelLoad, LinearRopeScalingDividesTheFrequencies) {
  const std::string p = rewrite(stories(), "linear.gguf", [](GgufWriter& w) {
    w.set_string("llama.rope.scaling.type", "linear");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
  });
  const auto scaled = Model::load({p, ""});
  const auto plain = Model::load({stories(), ""});
  ASSERT_EQ(scaled->rope().inv_freq().size(), plain->rope().inv_freq().size());
  for (size_t i = 0; i < plain->rope().inv_freq().size(); ++i)
    EXPECT_FLOAT_EQ(scaled->rope().inv_freq()[i], plain->rope().inv_freq()[i] * 0.25f);
}

TEST(ModelLoad, MissingRequiredTensorIsNamed) {
  const std::string p = rewrite(stories(), "noq.gguf", [](GgufWriter&) {}, {},
                                [](const std::string& t) { return t != "blk.2.attn_q.weight"; });
  EXPECT_NE(load_error(p).find("missing tensor blk.2.attn_q.weight"), std::string::npos);
}

// Every registered architecture, at a small size: the file synth writes from the
// architecture's own tensor table loads and generates finite logits, its bounded cache
// stops growing at the budget.
class EveryArchitecture : public testing::TestWithParam<std::string> {};

TEST_P(EveryArchitecture, SynthesisedSmallModelLoadsAndRuns) {
  SynthShape s;
  s.name = "small";
  s.description = "test";
  s.arch = GetParam();
  s.dim = 64;
  s.hidden_dim = 128;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = GetParam() == "gptneox" ? 4 : 2;
  s.vocab_size = 300;
  s.context_length = 128;
  s.tied = GetParam() != "gptneox";
  s.rope_dim = GetParam() == "gptneox" ? 4 : 0;
  SynthOptions o;
  o.custom_shape = s;
  o.path = temp_path("arch_" + GetParam() + ".gguf");
  synthesize_model(o);
  const auto model = Model::load({o.path, ""});
  EXPECT_EQ(model->architecture().name, GetParam());
  SessionOptions so;
  so.kv.policy = "h2o";
  so.kv.budget = BudgetSpec::parse("8", "--kv-budget");
  Session sess(model, so);
  std::vector<int32_t> ids = model->tokenizer().encode("the cat sat on the mat", true);
  std::span<const float> logits = sess.feed(ids);
  size_t bytes_at_budget = 0;
  for (int i = 0; i < 24; ++i) {
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
    const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = sess.feed(std::span(&next, 1));
    if (i == 4) bytes_at_budget = sess.kv_bytes();
  }
  EXPECT_GT(bytes_at_budget, 0u);
  EXPECT_EQ(sess.kv_bytes(), bytes_at_budget);
  for (int l = 0; l < model->config().n_layers; ++l) EXPECT_EQ(sess.kv_cache().n_slots(l), 8);
  std::filesystem::remove(o.path);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryArchitecture, testing::Values("llama", "qwen2", "gptneox"));

}  // namespace
}  // namespace h2o
