// Hugging Face directories (config.json + safetensors + tokenizer.json) and `h2o convert`:
// a converted file holds exactly the tensors llama.cpp's converter writes (compared byte
// for byte with the fixtures' GGUF twins) and gives the same logits as the directory;
// hostile directories are one-line errors naming the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "fixtures/family_refs.h"
#include "format/gguf.h"
#include "model/convert.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_errors.h"

namespace h2o {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_hf_" + name; }

std::vector<float> prompt_logits(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& ids) {
  Session s(m, SessionOptions{});
  std::vector<float> all;
  s.feed(ids, &all);
  return all;
}

// The fixture GGUFs were written by llama.cpp's gguf-py following convert_hf_to_gguf.py
// (F16 matrices, F32 vectors): converting the same HF weights to F16 must give the same
// bytes for every tensor (q/k rows permuted, NeoX's QKV regrouped, Llama 3's rope_freqs).
TEST(Convert, WritesTheTensorsLlamaCppsConverterWrites) {
  for (const auto& [dir, twin] : {std::pair{"llama-tiny", "llama3-tiny.gguf"}, std::pair{"neox-tiny", "neox-tiny.gguf"}}) {
    SCOPED_TRACE(dir);
    ConvertOptions o;
    o.input = test::family_path(dir);
    o.output = temp_path(std::string(dir) + ".gguf");
    o.type = TensorType::F16;
    const ConvertResult r = convert_to_gguf(o);
    const GgufFile ours = GgufFile::open(o.output), theirs = GgufFile::open(test::family_path(twin));
    EXPECT_EQ(ours.tensors().size(), theirs.tensors().size());
    for (const GgufTensor& t : theirs.tensors()) {
      const GgufTensor* u = ours.find_tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_EQ(u->type, t.type) << t.name;
      EXPECT_EQ(u->ne, t.ne) << t.name;
      ASSERT_EQ(u->n_bytes, t.n_bytes) << t.name;
      EXPECT_EQ(std::memcmp(u->data, t.data, t.n_bytes), 0) << t.name << " differs";
    }
    // The hyper-parameters and the vocabulary llama.cpp reads.
    for (const char* key : {"context_length", "embedding_length", "block_count", "feed_forward_length",
                            "attention.head_count", "rope.dimension_count"}) {
      const std::string k = r.arch + "." + key;
      EXPECT_EQ(ours.get_int(k), theirs.get_int(k)) << k;
    }
    EXPECT_EQ(ours.get_string("tokenizer.ggml.model"), theirs.get_string("tokenizer.ggml.model"));
    EXPECT_EQ(ours.get_string("tokenizer.ggml.pre"), theirs.get_string("tokenizer.ggml.pre"));
    EXPECT_EQ(ours.find("tokenizer.ggml.merges")->as_array("m").items.size(),
              theirs.find("tokenizer.ggml.merges")->as_array("m").items.size());
    EXPECT_EQ(ours.get_int("tokenizer.ggml.bos_token_id"), theirs.get_int("tokenizer.ggml.bos_token_id"));
    // One token per embedding row (llama.cpp refuses the file otherwise): NeoX's 47 spare
    // rows are "[PAD<id>]" tokens of type UNUSED, as the converter writes them.
    const GgufArray& our_tokens = ours.find("tokenizer.ggml.tokens")->as_array("t");
    const GgufArray& their_tokens = theirs.find("tokenizer.ggml.tokens")->as_array("t");
    ASSERT_EQ(our_tokens.items.size(), their_tokens.items.size());
    for (size_t i = 0; i < their_tokens.items.size(); ++i)
      ASSERT_EQ(our_tokens.items[i].as_string("t"), their_tokens.items[i].as_string("t")) << "token " << i;
    const GgufArray& our_types = ours.find("tokenizer.ggml.token_type")->as_array("k");
    const GgufArray& their_types = theirs.find("tokenizer.ggml.token_type")->as_array("k");
    ASSERT_EQ(our_types.items.size(), their_types.items.size());
    for (size_t i = 0; i < their_types.items.size(); ++i)
      ASSERT_EQ(our_types.items[i].as_int("k"), their_types.items[i].as_int("k")) << "token type " << i;
    fs::remove(o.output);
  }
}

// Every HF fixture converted (F32: exact) loads in h2o and gives the directory's logits bit
// for bit; OPT's GGUF is h2o's own (docs/opt-gguf.md). Its tokenizer survives the trip.
TEST(Convert, ConvertedFilesGiveTheDirectoriesLogits) {
  for (const auto& [dir, ref] : {std::pair{"llama-tiny", "llama3-tiny"}, std::pair{"neox-tiny", "neox-tiny"},
                                 std::pair{"opt-tiny", "opt-tiny"}}) {
    SCOPED_TRACE(dir);
    ConvertOptions o;
    o.input = test::family_path(dir);
    o.output = temp_path(std::string(dir) + "-f32.gguf");
    o.type = TensorType::F32;
    convert_to_gguf(o);
    const auto hf = Model::load({o.input, ""});
    const auto gg = Model::load({o.output, ""});
    EXPECT_EQ(gg->architecture().name, hf->architecture().name);
    const std::vector<int32_t> ids = test::load_family_ref(ref, "short").prompt_ids;
    const std::vector<float> a = prompt_logits(hf, ids), b = prompt_logits(gg, ids);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    const std::string text = "It is a truth universally acknowledged, <|endoftext|> 12345";
    EXPECT_EQ(gg->tokenizer().encode(text), hf->tokenizer().encode(text));
    fs::remove(o.output);
  }
}

TEST(Convert, QuantizedTypesAndBadTypesAndPaths) {
  ConvertOptions o;
  o.input = test::family_path("opt-tiny");
  o.output = temp_path("opt-q8.gguf");
  o.type = TensorType::Q8_0;
  convert_to_gguf(o);
  const auto m = Model::load({o.output, ""});
  EXPECT_EQ(m->weights().layers[0].mat(LayerRole::AttnQ).type, TensorType::Q8_0);
  fs::remove(o.output);
  o.output = "/nonexistent-dir/x.gguf";
  EXPECT_FALSE(test::error_of([&] { convert_to_gguf(o); }).empty());
  o.output = temp_path("bad.gguf");
  o.input = test::family_path("no-such-dir");
  EXPECT_FALSE(test::error_of([&] { convert_to_gguf(o); }).empty());
  EXPECT_FALSE(fs::exists(o.output));
}

// A copy of a fixture directory (files linked) with config.json edited by `edit`.
std::string edited_dir(const std::string& name, const std::string& fixture,
                       const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::family_path(fixture))) {
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir / e.path().filename());
  }
  std::ifstream in(test::family_path(fixture + "/config.json"));
  nlohmann::json c = nlohmann::json::parse(in);
  edit(c);
  std::ofstream(dir / "config.json") << c.dump(2);
  return dir.string();
}

std::string load_error(const std::string& path) { return test::error_of([&] { Model::load({path, ""}); }); }

TEST(HfHostile, BadConfigsAreOneLineErrorsNamingTheField) {
  struct Case {
    const char* name;
    std::function<void(nlohmann::json&)> edit;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"type", [](nlohmann::json& c) { c["model_type"] = "bert"; }, "model_type 'bert' is not supported"},
      {"notype", [](nlohmann::json& c) { c.erase("model_type"); }, "model_type"},
      {"neg", [](nlohmann::json& c) { c["hidden_size"] = -3; }, "hidden_size = -3"},
      {"huge", [](nlohmann::json& c) { c["num_hidden_layers"] = 1e12; }, "num_hidden_layers"},
      {"str", [](nlohmann::json& c) { c["num_attention_heads"] = "4"; }, "num_attention_heads"},
      {"layers3", [](nlohmann::json& c) { c["num_hidden_layers"] = 3; }, "missing tensor model.decoder.layers.2."},
      {"layers1", [](nlohmann::json& c) { c["num_hidden_layers"] = 1; }, "unexpected tensor"},
      {"width", [](nlohmann::json& c) { c["ffn_dim"] = 64; }, "has shape [128x32], expected [64x32]"},
      {"act", [](nlohmann::json& c) { c["activation_function"] = "gelu"; }, "activation_function 'gelu'"},
  };
  for (const Case& c : cases) {
    const std::string e = load_error(edited_dir(c.name, "opt-tiny", c.edit));
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << c.name;
  }
  const std::string yarn = load_error(edited_dir("yarn", "llama-tiny", [](nlohmann::json& c) {
    c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  }));
  EXPECT_NE(yarn.find("'yarn' is not supported"), std::string::npos) << yarn;
}

TEST(HfHostile, MissingFilesAreNamed) {
  const fs::path dir = temp_path("empty");
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_NE(load_error(dir.string()).find("config.json"), std::string::npos);
  const std::string no_weights = edited_dir("noweights", "opt-tiny", [](nlohmann::json&) {});
  fs::remove(fs::path(no_weights) / "model.safetensors");
  EXPECT_NE(load_error(no_weights).find("safetensors"), std::string::npos);
  const std::string no_tok = edited_dir("notok", "opt-tiny", [](nlohmann::json&) {});
  fs::remove(fs::path(no_tok) / "tokenizer.json");
  EXPECT_NE(load_error(no_tok).find("tokenizer"), std::string::npos);
}

}  // namespace
}  // namespace h2o
