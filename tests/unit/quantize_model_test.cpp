// `h2o quantize` (format/quantize_model.h): the per-tensor choices of llama-quantize's
// mixes (the tables of shared/docs/model-families.md §4.3, restated here by hand), the
// fallback for rows that are not multiples of the block, the plan text, and the written
// file: metadata copied, types as planned, values close to the source, loadable.
#include "format/quantize_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "runtime/session.h"

namespace h2o {
namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_quantize_" + name; }

// An F32 llama model: 8 layers, 8 query heads over 1 KV head (GQA 8), dim 256 and a
// 320-wide feed-forward (ffn_down's rows are 320 values: not a multiple of 256).
std::string f32_model() {
  static const std::string path = [] {
    SynthShape s;
    s.name = "quantize-test";
    s.description = "";
    s.dim = 256;
    s.hidden_dim = 320;
    s.n_layers = 8;
    s.n_heads = 8;
    s.n_kv_heads = 1;
    s.vocab_size = 300;
    s.context_length = 64;
    SynthOptions o;
    o.custom_shape = s;
    o.path = temp_path("f32.gguf");
    o.threads = 2;
    synthesize_model(o);
    return o.path;
  }();
  return path;
}

TensorType type_of(const QuantizePlan& p, const std::string& name) {
  for (const auto& t : p.tensors) {
    if (t.name == name) return t.to;
  }
  ADD_FAILURE() << "no tensor " << name;
  return TensorType::F32;
}

std::string blk(int i, const char* t) { return "blk." + std::to_string(i) + "." + t + ".weight"; }

// use_more_bits(i, 8): i < 1 || i >= 7 || (i - 1) % 3 == 2  ->  layers 0, 3, 6, 7.
bool more_bits(int i) { return i == 0 || i == 3 || i == 6 || i == 7; }

TEST(QuantizeModel, Q4KMFollowsLlamaQuantize) {
  const GgufFile in = GgufFile::open(f32_model());
  const QuantizePlan p = plan_quantization(in, "q4_k_m");
  EXPECT_EQ(p.mix.name, "Q4_K_M");
  EXPECT_EQ(p.mix.ftype, 15u);
  EXPECT_EQ(type_of(p, "output.weight"), TensorType::Q6_K);
  EXPECT_EQ(type_of(p, "token_embd.weight"), TensorType::Q4_K);  // untied: the base type
  EXPECT_EQ(type_of(p, "output_norm.weight"), TensorType::F32);
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(type_of(p, blk(i, "attn_q")), TensorType::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "attn_k")), TensorType::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "attn_output")), TensorType::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "attn_v")), more_bits(i) ? TensorType::Q6_K : TensorType::Q4_K);
    EXPECT_EQ(type_of(p, blk(i, "ffn_gate")), TensorType::Q4_K);
    // ffn_down rows are 320 values: Q4_K -> Q5_0, Q6_K -> Q8_0.
    EXPECT_EQ(type_of(p, blk(i, "ffn_down")), more_bits(i) ? TensorType::Q8_0 : TensorType::Q5_0);
    EXPECT_EQ(type_of(p, blk(i, "attn_norm")), TensorType::F32);
  }
}

TEST(QuantizeModel, OtherMixes) {
  const GgufFile in = GgufFile::open(f32_model());
  const QuantizePlan q5 = plan_quantization(in, "Q5_K_M");
  const QuantizePlan q3 = plan_quantization(in, "q3_k_m");
  const QuantizePlan q2 = plan_quantization(in, "Q2_K");
  const QuantizePlan q40 = plan_quantization(in, "q4_0");
  const QuantizePlan q80 = plan_quantization(in, "q8_0");
  const QuantizePlan nl = plan_quantization(in, "iq4_nl");
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(type_of(q5, blk(i, "attn_q")), TensorType::Q5_K);
    EXPECT_EQ(type_of(q5, blk(i, "attn_v")), more_bits(i) ? TensorType::Q6_K : TensorType::Q5_K);
    EXPECT_EQ(type_of(q5, blk(i, "ffn_down")), more_bits(i) ? TensorType::Q8_0 : TensorType::Q5_1);  // fallbacks
    EXPECT_EQ(type_of(q3, blk(i, "attn_q")), TensorType::Q3_K);
    EXPECT_EQ(type_of(q3, blk(i, "attn_v")), i < 2 ? TensorType::Q5_K : TensorType::Q4_K);
    EXPECT_EQ(type_of(q3, blk(i, "attn_output")), TensorType::Q4_K);
    EXPECT_EQ(type_of(q3, blk(i, "ffn_down")), TensorType::Q5_0);  // Q4_K (i >= 8/16) -> Q5_0
    EXPECT_EQ(type_of(q2, blk(i, "attn_q")), TensorType::Q2_K);
    EXPECT_EQ(type_of(q2, blk(i, "attn_v")), TensorType::Q4_K);  // GQA 8 >= 4
    EXPECT_EQ(type_of(q2, blk(i, "attn_output")), TensorType::Q3_K);
    EXPECT_EQ(type_of(q2, blk(i, "ffn_down")), TensorType::Q4_0);  // Q3_K -> Q4_0
    EXPECT_EQ(type_of(q40, blk(i, "ffn_down")), TensorType::Q4_0);
    EXPECT_EQ(type_of(q80, blk(i, "attn_v")), TensorType::Q8_0);
    EXPECT_EQ(type_of(nl, blk(i, "attn_v")), TensorType::Q5_K);  // IQ4 mixes: GQA >= 4
    EXPECT_EQ(type_of(nl, blk(i, "ffn_down")), i < 1 ? TensorType::Q5_1 : TensorType::IQ4_NL);  // Q5_K -> Q5_1
  }
  EXPECT_EQ(type_of(q40, "output.weight"), TensorType::Q6_K);
  EXPECT_EQ(type_of(q80, "output.weight"), TensorType::Q8_0);
  EXPECT_EQ(type_of(q2, "output.weight"), TensorType::Q6_K);
  const QuantizePlan pure = plan_quantization(in, "q4_k_m", {.pure = true});
  EXPECT_EQ(type_of(pure, "output.weight"), TensorType::Q4_K);
  EXPECT_EQ(type_of(pure, blk(3, "attn_v")), TensorType::Q4_K);
  EXPECT_EQ(type_of(pure, blk(3, "ffn_down")), TensorType::Q5_0);  // the fallback still applies
  const QuantizePlan f16 = plan_quantization(in, "f16");
  EXPECT_EQ(type_of(f16, blk(3, "ffn_down")), TensorType::F16);
  EXPECT_EQ(type_of(f16, "output_norm.weight"), TensorType::F32);
  EXPECT_THROW(plan_quantization(in, "q4_k_x"), Error);
}

// A file without output.weight (tied embeddings): the token embedding is the output and
// gets its type (Q6_K, or Q8_0 when its rows are not multiples of 256); rows not even a
// multiple of 32 fall back to F16.
TEST(QuantizeModel, TiedEmbeddingAndF16Fallback) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.attention.head_count", 4);
  w.set_u32("llama.attention.head_count_kv", 4);
  const std::vector<float> zeros(96 * 40, 0.25f);
  const auto add = [&](const std::string& name, uint64_t cols, uint64_t rows) {
    w.add_tensor(name, {cols, rows}, TensorType::F32,
                 std::span(reinterpret_cast<const uint8_t*>(zeros.data()), cols * rows * 4));
  };
  add("token_embd.weight", 96, 40);
  add("blk.0.attn_v.weight", 96, 8);
  add("blk.0.ffn_down.weight", 40, 8);
  const std::string path = temp_path("tied.gguf");
  w.write(path);
  const GgufFile in = GgufFile::open(path);
  const QuantizePlan p = plan_quantization(in, "q4_k_m");
  EXPECT_EQ(type_of(p, "token_embd.weight"), TensorType::Q8_0);  // tied, 96 % 256 != 0
  EXPECT_EQ(type_of(p, "blk.0.attn_v.weight"), TensorType::Q8_0);  // use_more_bits(0, 1): Q6_K -> Q8_0
  EXPECT_EQ(type_of(p, "blk.0.ffn_down.weight"), TensorType::F16);  // 40 % 32 != 0
  const std::string text = plan_to_text(p);
  EXPECT_NE(text.find("blk.0.ffn_down.weight"), std::string::npos) << text;
  EXPECT_NE(text.find("fallback"), std::string::npos) << text;
  EXPECT_NE(text.find("bits per weight"), std::string::npos) << text;
  // Quantized inputs are refused unless asked for.
  write_quantized(in, p, temp_path("tied-q.gguf"), 1);
  const GgufFile q = GgufFile::open(temp_path("tied-q.gguf"));
  EXPECT_THROW(plan_quantization(q, "q4_0"), Error);
  EXPECT_NO_THROW(plan_quantization(q, "q4_0", {.allow_requantize = true}));
}

TEST(QuantizeModel, WrittenFileCopiesMetadataDecodesCloseAndRuns) {
  const std::string src = f32_model();
  const GgufFile in = GgufFile::open(src);
  const QuantizePlan p = plan_quantization(in, "q4_k_m");
  const std::string out = temp_path("q4_k_m.gguf");
  write_quantized(in, p, out, 2);
  {
    const GgufFile q = GgufFile::open(out);
    for (const std::string& key : in.key_order()) {
      if (key == "general.file_type") continue;
      ASSERT_NE(q.find(key), nullptr) << key;
      EXPECT_EQ(q.find(key)->to_display_string(), in.find(key)->to_display_string()) << key;
    }
    EXPECT_EQ(q.get_int("general.file_type"), 15);
    EXPECT_EQ(q.get_int("general.quantization_version"), 2);
    ASSERT_EQ(q.tensors().size(), in.tensors().size());
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      const GgufTensor& t = q.tensors()[i];
      EXPECT_EQ(t.name, in.tensors()[i].name);
      EXPECT_EQ(t.type, p.tensors[i].to) << t.name;
      EXPECT_EQ(t.n_bytes, p.tensors[i].bytes_out) << t.name;
      // Values near the source: within 15% RMS (4-bit types) of the source RMS.
      const auto cols = static_cast<size_t>(t.ne[0]);
      std::vector<float> y(cols);
      double se = 0, ss = 0;
      const auto* x = reinterpret_cast<const float*>(in.tensors()[i].data);
      dequantize_row(t.type, t.data, y.data(), cols);
      for (size_t c = 0; c < cols; ++c) {
        se += (y[c] - x[c]) * (y[c] - x[c]);
        ss += x[c] * x[c];
      }
      EXPECT_LE(std::sqrt(se), 0.15 * std::sqrt(ss) + 1e-6) << t.name;
    }
  }
  // The same bytes whatever the thread count.
  write_quantized(in, p, temp_path("q4_k_m-1.gguf"), 1);
  std::ifstream a(out, std::ios::binary), b(temp_path("q4_k_m-1.gguf"), std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
  // It loads and runs.
  auto model = Model::load({out, ""});
  Session s(model, SessionOptions{});
  const std::vector<int32_t> ids = {1, 20, 30, 40};
  const auto logits = s.feed(ids);
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace h2o
