// `h2o synth` library side: the `tiny` shape in every writable type loads, tokenizes and
// runs with finite logits; files are reproducible per seed and independent of the thread
// count; the named shapes have their published sizes; bad names are h2o::Errors. Also the
// GgufWriter streaming path the big shapes rely on.
#include "model/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "format/gguf.h"
#include "format/inspect.h"
#include "model/model.h"
#include "runtime/session.h"

namespace h2o {
namespace {

using Bytes = std::vector<uint8_t>;

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_synth_" + name; }

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string synth_tiny(TensorType type, uint64_t seed = 1, int threads = 1, const std::string& tag = "") {
  SynthOptions o;
  o.shape = "tiny";
  o.type = type;
  o.seed = seed;
  o.threads = threads;
  o.path = temp_path(std::string(traits(type).name) + tag + ".gguf");
  synthesize_model(o);
  return o.path;
}

bool all_finite(std::span<const float> v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

TEST(Synth, TinyInEveryTypeLoadsRunsAndInspects) {
  const SynthShape& shape = find_synth_shape("tiny");
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                          TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::IQ4_NL}) {
    SCOPED_TRACE(std::string(traits(type).name));
    const std::string path = synth_tiny(type);
    auto model = Model::load({path, ""});
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.dim, shape.dim);
    EXPECT_EQ(c.hidden_dim, shape.hidden_dim);
    EXPECT_EQ(c.n_layers, shape.n_layers);
    EXPECT_EQ(c.n_heads, shape.n_heads);
    EXPECT_EQ(c.n_kv_heads, shape.n_kv_heads);
    EXPECT_EQ(c.vocab_size, shape.vocab_size);
    EXPECT_EQ(c.context_length, shape.context_length);
    EXPECT_EQ(model->weights().layers[0].mat(LayerRole::FfnDown).type, type);

    // The synthetic vocabulary round-trips text, letters merging and the rest as bytes.
    const Tokenizer& tok = model->tokenizer();
    const std::vector<int32_t> ids = tok.encode("the cat, Ok?", true);
    ASSERT_GE(ids.size(), 3u);
    EXPECT_EQ(ids.front(), tok.bos_id());
    EXPECT_EQ(tok.decode(std::span(ids).subspan(1), ids.front()), "the cat, Ok?");

    // Prefill and a few decode steps give finite logits of some spread.
    Session s(model, SessionOptions{});
    std::span<const float> logits = s.feed(ids);
    ASSERT_TRUE(all_finite(logits));
    for (int i = 0; i < 4; ++i) {
      const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      logits = s.feed(std::span(&next, 1));
      ASSERT_TRUE(all_finite(logits)) << "step " << i;
    }
    const auto [lo, hi] = std::minmax_element(logits.begin(), logits.end());
    EXPECT_GT(*hi - *lo, 0.1f);

    const InspectReport r = inspect_model(path);
    EXPECT_EQ(r.tensors.size(), 3u + 9u * static_cast<size_t>(shape.n_layers));
    EXPECT_EQ(r.total_params, shape.n_params());
    std::filesystem::remove(path);
  }
}

TEST(Synth, ReproducibleForASeedAndIndependentOfThreads) {
  const Bytes a = read_bytes(synth_tiny(TensorType::Q4_0, 7, 1, "a"));
  const Bytes b = read_bytes(synth_tiny(TensorType::Q4_0, 7, 3, "b"));
  const Bytes c = read_bytes(synth_tiny(TensorType::Q4_0, 8, 1, "c"));
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b);
  EXPECT_EQ(a.size(), c.size());
  EXPECT_FALSE(a == c);
}

TEST(Synth, NamedShapesHaveTheirPublishedSizes) {
  const auto params = [](const char* name) { return static_cast<double>(find_synth_shape(name).n_params()) / 1e9; };
  EXPECT_NEAR(params("tinyllama-1.1b"), 1.10, 0.02);
  EXPECT_NEAR(params("llama2-7b"), 6.74, 0.02);
  EXPECT_NEAR(params("mha-200m"), 0.22, 0.03);
  EXPECT_NEAR(params("llama3.2-1b"), 1.24, 0.02);  // tied head
  EXPECT_NEAR(params("qwen2.5-0.5b"), 0.49, 0.02);
  EXPECT_NEAR(params("smollm2-360m"), 0.36, 0.02);
  EXPECT_NEAR(params("pythia-160m"), 0.16, 0.01);
  EXPECT_EQ(find_synth_shape("qwen2.5-0.5b").arch, "qwen2");
  EXPECT_EQ(find_synth_shape("pythia-160m").arch, "gptneox");
  const SynthShape& t = find_synth_shape("tinyllama-1.1b");
  EXPECT_EQ(t.n_heads / t.n_kv_heads, 8);
  const SynthShape& m = find_synth_shape("mha-200m");
  EXPECT_EQ(m.n_heads, m.n_kv_heads);
  for (const auto& s : synth_shapes()) {
    EXPECT_EQ(s.dim % 32, 0) << s.name;
    EXPECT_EQ(s.hidden_dim % 32, 0) << s.name;
    EXPECT_GE(s.vocab_size, 259) << s.name;
  }
}

TEST(Synth, BadNamesAreErrors) {
  EXPECT_THROW(find_synth_shape("llama3-405b"), Error);
  EXPECT_THROW(parse_synth_type("q7_k"), Error);
  EXPECT_EQ(parse_synth_type("q3_k"), TensorType::Q3_K);
  EXPECT_EQ(parse_synth_type("IQ4_xs"), TensorType::IQ4_XS);
  EXPECT_EQ(parse_synth_type("Q4_K"), TensorType::Q4_K);
  EXPECT_EQ(parse_synth_type("q6_k"), TensorType::Q6_K);
  EXPECT_THROW(parse_synth_type(""), Error);
  EXPECT_EQ(parse_synth_type("Q8_0"), TensorType::Q8_0);
  EXPECT_EQ(parse_synth_type("bf16"), TensorType::BF16);
  SynthOptions o;
  o.shape = "nope";
  o.path = temp_path("nope.gguf");
  EXPECT_THROW(synthesize_model(o), Error);
  EXPECT_FALSE(std::filesystem::exists(o.path));
  o.shape = "tiny";
  o.path = "/nonexistent-dir/x.gguf";
  EXPECT_THROW(synthesize_model(o), Error);
}

// ---- K-quants ---------------------------------------------------------------------------

// Q4_K / Q6_K super-blocks hold 256 values, so every matrix width must be a multiple of
// 256; `tiny` (dim 64) is too narrow. A small custom shape instead (~1.1M params).
SynthShape k_quant_shape() {
  SynthShape s;
  s.name = "tiny-256";
  s.description = "small GQA shape with 256-multiple widths";
  s.dim = 256;
  s.hidden_dim = 512;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.vocab_size = 512;
  s.context_length = 128;
  return s;
}

TEST(Synth, KQuantFilesLoadAndGenerate) {
  const SynthShape shape = k_quant_shape();
  const std::pair<TensorType, int64_t> types[] = {{TensorType::Q2_K, 21}, {TensorType::Q3_K, 11},
                                                  {TensorType::Q4_K, 14}, {TensorType::Q5_K, 16},
                                                  {TensorType::Q6_K, 18}, {TensorType::IQ4_XS, 30}};
  for (const auto& [type, ftype] : types) {
    SCOPED_TRACE(std::string(traits(type).name));
    SynthOptions o;
    o.custom_shape = shape;
    o.type = type;
    o.seed = 3;
    o.threads = 2;
    o.path = temp_path(std::string(traits(type).name) + "_k.gguf");
    const SynthResult r = synthesize_model(o);
    EXPECT_EQ(r.n_params, shape.n_params());
    // Every matrix is of the type, the norms F32; general.file_type is ggml's llama_ftype.
    {
      const GgufFile f = GgufFile::open(o.path);
      EXPECT_EQ(f.get_int("general.file_type"), ftype);
      EXPECT_EQ(f.find_tensor("blk.1.ffn_down.weight")->type, type);
      EXPECT_EQ(f.find_tensor("token_embd.weight")->type, type);
      EXPECT_EQ(f.find_tensor("output_norm.weight")->type, TensorType::F32);
    }

    auto model = Model::load({o.path, ""});
    EXPECT_EQ(model->config().dim, shape.dim);
    EXPECT_EQ(model->config().vocab_size, shape.vocab_size);
    EXPECT_EQ(model->weights().layers[0].mat(LayerRole::FfnDown).type, type);
    EXPECT_EQ(model->weights().mat(ModelRole::Output).type, type);

    // Prefill and greedy decoding: finite logits of some spread, tokens in the vocabulary.
    const std::vector<int32_t> ids = model->tokenizer().encode("the cat sat", true);
    Session s(model, SessionOptions{});
    std::span<const float> logits = s.feed(ids);
    ASSERT_EQ(logits.size(), static_cast<size_t>(shape.vocab_size));
    ASSERT_TRUE(all_finite(logits));
    for (int i = 0; i < 4; ++i) {
      const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ASSERT_GE(next, 0);
      ASSERT_LT(next, shape.vocab_size);
      logits = s.feed(std::span(&next, 1));
      ASSERT_TRUE(all_finite(logits)) << "step " << i;
    }
    const auto [lo, hi] = std::minmax_element(logits.begin(), logits.end());
    EXPECT_GT(*hi - *lo, 0.1f);
    std::filesystem::remove(o.path);
  }
}

TEST(Synth, KQuantsRejectWidthsNotMultiplesOf256) {
  for (TensorType type : {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
                          TensorType::IQ4_XS}) {
    SynthOptions o;
    o.shape = "tiny";  // dim 64
    o.type = type;
    o.path = temp_path("narrow.gguf");
    try {
      synthesize_model(o);
      ADD_FAILURE() << "no error for " << traits(type).name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string(traits(type).name)), std::string::npos) << msg;
      EXPECT_NE(msg.find("64"), std::string::npos) << msg;
      EXPECT_NE(msg.find("256"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_FALSE(std::filesystem::exists(o.path));
  }
  // A custom shape with a 256-wide embedding but a 320-wide feed-forward fails on the latter.
  SynthOptions o;
  o.custom_shape = k_quant_shape();
  o.custom_shape->hidden_dim = 320;
  o.type = TensorType::Q4_K;
  o.path = temp_path("narrow_ffn.gguf");
  try {
    synthesize_model(o);
    ADD_FAILURE() << "no error for hidden_dim 320";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("320"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(o.path));
}

// ---- GgufWriter::write_streamed --------------------------------------------------------

Bytes f32_bytes(std::vector<float> v) {
  Bytes b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(GgufWriterStreaming, MatchesTheInMemoryWriterByteForByte) {
  const Bytes t0 = f32_bytes({1, 2, 3}), t1 = f32_bytes({4, 5, 6, 7, 8, 9, 10, 11});
  GgufWriter mem;
  mem.set_string("general.architecture", "llama");
  mem.add_tensor("a", {3}, TensorType::F32, t0);
  mem.add_tensor("b", {4, 2}, TensorType::F32, t1);

  GgufWriter streamed;
  streamed.set_string("general.architecture", "llama");
  streamed.add_tensor("a", {3}, TensorType::F32, t0);
  streamed.declare_tensor("b", {4, 2}, TensorType::F32);
  EXPECT_THROW(streamed.to_bytes(), Error);
  const std::string path = temp_path("streamed.gguf");
  streamed.write_streamed(path, [&](size_t index, const GgufWriter::DataSink& sink) {
    EXPECT_EQ(index, 1u);
    sink(std::span(t1).first(12));  // in pieces
    sink(std::span(t1).subspan(12));
  });
  EXPECT_TRUE(read_bytes(path) == mem.to_bytes());
  EXPECT_NO_THROW(GgufFile::open(path));
  std::filesystem::remove(path);
}

TEST(GgufWriterStreaming, WrongByteCountIsAnErrorAndLeavesNoFile) {
  GgufWriter w;
  w.declare_tensor("b", {4}, TensorType::F32);
  const std::string path = temp_path("short.gguf");
  const Bytes few = f32_bytes({1, 2, 3});
  EXPECT_THROW(w.write_streamed(path, [&](size_t, const GgufWriter::DataSink& sink) { sink(few); }), Error);
  EXPECT_FALSE(std::filesystem::exists(path));
  const Bytes many = f32_bytes({1, 2, 3, 4, 5});
  EXPECT_THROW(w.write_streamed(path, [&](size_t, const GgufWriter::DataSink& sink) { sink(many); }), Error);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace h2o
