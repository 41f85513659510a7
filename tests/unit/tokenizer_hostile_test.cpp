// Byte-level BPE vocabularies from hostile or broken files: GGUF metadata, tokenizer.json,
// tokenizer_config.json, generation_config.json, HF directories. Every defect is one
// h2o::Error line naming the file and the problem; nothing crashes. Also the behaviour of
// small hand-built vocabularies (merge order, added tokens, lstrip/rstrip, invalid UTF-8).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

using Ids = std::vector<int32_t>;
namespace fs = std::filesystem;

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "expected h2o::Error";
  return {};
}

#define EXPECT_ERROR_HAS(stmt, text)                                      \
  do {                                                                    \
    const std::string msg_ = error_message([&] { stmt; });                \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message: " << msg_; \
  } while (0)

// ---- GGUF: a small byte-level vocabulary ----

struct SmallBpe {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "a b"};
  SmallBpe() {
    for (int b = 0; b < 256; ++b) tokens.push_back(unicode::bytes_to_mapped(std::string(1, static_cast<char>(b))));
    types.assign(256, 1);
    for (const char* t : {"\xC4\xA0t", "he", "\xC4\xA0the", "ab"}) add(t, 1);
    add("<|endoftext|>", 3);  // 260
    add("<think>", 4);        // 261
  }
  void add(const std::string& text, int32_t type) {
    tokens.push_back(text);
    types.push_back(type);
  }
  int32_t id(const std::string& text) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  }
  GgufWriter writer(const std::string& pre = "gpt-2") const {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_string_array("tokenizer.ggml.merges", merges);
    w.set_u32("tokenizer.ggml.eos_token_id", 260);
    return w;
  }
};

std::unique_ptr<Tokenizer> parse_gguf(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  return load_tokenizer_from_gguf(GgufFile::parse(bytes, "mem.gguf"));
}

TEST(TokenizerHostileTest, SmallGgufVocabularyWorks) {
  const SmallBpe v;
  const auto tok = parse_gguf(v.writer());
  EXPECT_EQ(tok->encode(" the"), (Ids{v.id("\xC4\xA0the")}));
  EXPECT_EQ(tok->encode("ab"), (Ids{v.id("ab")}));
  EXPECT_EQ(tok->encode("ba"), (Ids{'b', 'a'}));  // token b is byte b
  EXPECT_EQ(tok->encode("x<think>"), (Ids{'x', 261}));
  EXPECT_EQ(tok->encode("<|endoftext|>", EncodeOptions{.parse_special = true}), (Ids{260}));
  EXPECT_TRUE(tok->is_end_of_generation(260));
  EXPECT_FALSE(tok->add_bos());
  EXPECT_FALSE(tok->bos_id());
  EXPECT_ERROR_HAS(tok->encode("x", EncodeOptions{.add_bos = true}), "no BOS token");
  // Without tokenizer.ggml.pre: llama.cpp's "default" pre-tokenizer.
  EXPECT_EQ(parse_gguf(v.writer(""))->vocabulary().pre, "default");
}

TEST(TokenizerHostileTest, GgufMergesNamingUnknownTokens) {
  SmallBpe v;
  v.merges.push_back("x yz");
  EXPECT_ERROR_HAS(parse_gguf(v.writer()), "mem.gguf: merge 4 ('x yz') names unknown token 'yz'");
  v.merges.back() = "\xC4\xA0 q";  // both parts exist, "Ġq" does not
  EXPECT_ERROR_HAS(parse_gguf(v.writer()), "names unknown token '\xC4\xA0q'");
  v.merges.back() = "abc";
  EXPECT_ERROR_HAS(parse_gguf(v.writer()), "is not two tokens separated by a space");
  v.merges.back() = "a ";
  EXPECT_ERROR_HAS(parse_gguf(v.writer()), "is not two tokens separated by a space");
  v.merges.back() = "";
  EXPECT_ERROR_HAS(parse_gguf(v.writer()), "is not two tokens separated by a space");
}

TEST(TokenizerHostileTest, GgufBadMetadata) {
  const SmallBpe v;
  EXPECT_ERROR_HAS(parse_gguf(v.writer("tekken")), "unknown pre-tokenizer 'tekken'");
  {
    GgufWriter w = v.writer();
    w.set_u32("tokenizer.ggml.bos_token_id", 5000);
    EXPECT_ERROR_HAS(parse_gguf(w), "BOS token id 5000 is out of range");
  }
  {
    GgufWriter w = v.writer();
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    EXPECT_ERROR_HAS(parse_gguf(w), "adds a BOS token but has none");
  }
  {
    GgufWriter w = v.writer();
    w.set("tokenizer.ggml.eot_token_id", GgufValue{GgufValueType::INT32, int64_t{-1}});
    EXPECT_ERROR_HAS(parse_gguf(w), "tokenizer.ggml.eot_token_id = -1 is not a valid token id");
  }
  {
    GgufWriter w = v.writer();
    std::vector<int32_t> types = v.types;
    types.pop_back();
    w.set_i32_array("tokenizer.ggml.token_type", types);
    EXPECT_ERROR_HAS(parse_gguf(w), "tokenizer.ggml.token_type has 261 entries for 262 tokens");
  }
  {
    GgufWriter w = v.writer();
    std::vector<int32_t> types = v.types;
    types[3] = 0;
    w.set_i32_array("tokenizer.ggml.token_type", types);
    EXPECT_ERROR_HAS(parse_gguf(w), "token_type[3] = 0 is not a known token type");
  }
  {
    GgufWriter w = v.writer();
    w.set_i32_array("tokenizer.ggml.merges", {1, 2});
    EXPECT_ERROR_HAS(parse_gguf(w), "mem.gguf:");
  }
  {
    GgufWriter w = v.writer();
    w.set_string("tokenizer.ggml.model", "t5");
    EXPECT_ERROR_HAS(parse_gguf(w), "tokenizer model 't5' is not supported (supported: llama");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", v.tokens);
    EXPECT_ERROR_HAS(parse_gguf(w), "missing tokenizer metadata key tokenizer.ggml.merges");
  }
  {
    GgufWriter w = v.writer();
    w.set_string_array("tokenizer.ggml.tokens", {});
    EXPECT_ERROR_HAS(parse_gguf(w), "tokenizer.ggml.tokens is empty");
  }
  EXPECT_ERROR_HAS(read_vocabulary_llama2c(test::model_path("tok512.bin"), static_cast<int32_t>(kMaxVocabTokens + 1)),
                   "more than the");
}

// Empty strings and bytes that are not UTF-8 in token texts load and behave sensibly.
TEST(TokenizerHostileTest, GgufOddTokenTexts) {
  SmallBpe v;
  v.add("", 1);          // 262: can never be produced
  v.add("\xFF\xFE", 1);  // 263: not UTF-8; decodes to its own bytes
  v.add("<\xFF>", 3);    // 264: a control token spelled with a stray byte
  v.add("", 3);          // 265: an empty control token is never matched
  const auto tok = parse_gguf(v.writer());
  EXPECT_EQ(tok->piece(263), "\xFF\xFE");
  EXPECT_EQ(tok->decode_piece(-1, 262), "");
  const Ids ids = tok->encode("a<\xFF>b", EncodeOptions{.parse_special = true});
  EXPECT_EQ(ids, (Ids{'a', 264, 'b'}));
  EXPECT_EQ(tok->decode(ids, -1, /*special=*/true), "a<\xFF>b");
  EXPECT_EQ(tok->decode(tok->encode("a<\xFF>b")), "a<\xFF>b");
  EXPECT_ERROR_HAS(tok->decode_piece(-1, 266), "token id 266 is out of range");
}

// A byte with no token: unk if the vocabulary has one, else a clear error at encode time.
TEST(TokenizerHostileTest, GgufMissingByteTokens) {
  SmallBpe v;
  v.tokens['z'] = "zz";  // no single-character token for 'z' any more
  const auto tok = parse_gguf(v.writer());
  EXPECT_ERROR_HAS(tok->encode("z"), "no token of this vocabulary stands for");
  GgufWriter w = v.writer();
  w.set_u32("tokenizer.ggml.unknown_token_id", 260);
  EXPECT_EQ(parse_gguf(w)->encode("az"), (Ids{'a', 260}));
}

// ---- tokenizer.json ----

std::string small_json(const std::string& extra_model = "", const std::string& extra_top = "") {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    nlohmann::json key = unicode::bytes_to_mapped(std::string(1, static_cast<char>(b)));
    vocab += key.dump() + ": " + std::to_string(b) + ", ";
  }
  vocab += R"("\u0120t": 256, "he": 257, "\u0120the": 258, "ab": 259)";
  return R"({"version": "1.0", "model": {"type": "BPE", "vocab": {)" + vocab +
         R"(}, "merges": [["\u0120", "t"], "h e", ["\u0120t", "he"], "a b"])" + extra_model +
         R"(}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "decoder": {"type": "ByteLevel"}, "added_tokens": [
              {"id": 260, "content": "<|endoftext|>", "special": true},
              {"id": 261, "content": "<mask>", "special": true, "lstrip": true},
              {"id": 262, "content": "<sep>", "special": true, "rstrip": true}])" +
         extra_top + "}";
}

std::unique_ptr<Tokenizer> parse_json(const std::string& json) {
  return make_tokenizer(parse_tokenizer_json(json, "tokenizer.json"));
}

TEST(TokenizerHostileTest, SmallTokenizerJsonWorks) {
  const auto tok = parse_json(small_json());
  EXPECT_EQ(tok->encode(" the ab"), (Ids{258, ' ', 259}));
  EXPECT_EQ(tok->encode(" the"), (Ids{258}));
  EXPECT_EQ(tok->vocab_size(), 263);
  EXPECT_TRUE(tok->is_end_of_generation(260));  // named <|endoftext|>, special
  // lstrip: <mask> swallows the spaces before it; rstrip: <sep> those after it.
  const EncodeOptions special{.parse_special = true};
  EXPECT_EQ(tok->encode("ab  <mask>ab", special), (Ids{259, 261, 259}));
  EXPECT_EQ(tok->encode("ab<sep> \t ab", special), (Ids{259, 262, 259}));
  // Pairs, legacy strings and #version lines are all merges.
  const auto versioned =
      parse_json(small_json().replace(small_json().find("\"merges\": ["), 11, "\"merges\": [\"#version: 0.2\", "));
  EXPECT_EQ(versioned->encode(" the"), (Ids{258}));
}

TEST(TokenizerHostileTest, TokenizerJsonDefects) {
  const std::string good = small_json();
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t pos = s.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return s.replace(pos, from.size(), to);
  };
  EXPECT_ERROR_HAS(parse_json(good.substr(0, good.size() / 2)), "tokenizer.json: malformed JSON");
  EXPECT_ERROR_HAS(parse_json(replaced("\"he\"", "\"h\xFF\"")), "malformed JSON");  // not UTF-8
  EXPECT_ERROR_HAS(parse_json("[1, 2]"), "expected a JSON object");
  EXPECT_ERROR_HAS(parse_json(std::string(100000, '[') + std::string(100000, ']')), "expected a JSON object");
  EXPECT_ERROR_HAS(parse_json(replaced("\"a b\"", "\"a qq\"")), "merge 3 ('a qq') names unknown token 'qq'");
  EXPECT_ERROR_HAS(parse_json(replaced("\"a b\"", "\"a q\"")), "merge 3 ('a q') names unknown token 'aq'");
  EXPECT_ERROR_HAS(parse_json(replaced("\"a b\"", "\"a b c\"")), "is not two tokens separated by a space");
  EXPECT_ERROR_HAS(parse_json(replaced("[\"\\u0120\", \"t\"]", "[\"\\u0120\", \"t\", \"x\"]")), "must be a pair");
  EXPECT_ERROR_HAS(parse_json(replaced("\"ab\": 259", "\"ab\": 1000000000000")), "is not a token id");
  EXPECT_ERROR_HAS(parse_json(replaced("\"ab\": 259", "\"ab\": -1")), "is not a token id");
  EXPECT_ERROR_HAS(parse_json(replaced("\"ab\": 259", "\"ab\": \"259\"")), "must be an integer token id");
  EXPECT_ERROR_HAS(parse_json(replaced("\"ab\": 259", "\"ab\": 258")), "gives id 258 to both");
  EXPECT_ERROR_HAS(parse_json(replaced("\"ab\": 259", "\"\": 300")), "empty token");
  EXPECT_ERROR_HAS(parse_json(replaced("\"content\": \"<mask>\"", "\"content\": \"\"")), "empty content");
  EXPECT_ERROR_HAS(parse_json(replaced("\"type\": \"BPE\"", "\"type\": \"WordPiece\"")), "model type 'WordPiece'");
  EXPECT_ERROR_HAS(parse_json(replaced("\"version\": \"1.0\", \"model\": {", "\"model\": 5, \"x\": {")),
                   "tokenizer.model must be an object");
  EXPECT_ERROR_HAS(parse_json(small_json(", \"byte_fallback\": true")), "byte_fallback");
  EXPECT_ERROR_HAS(parse_json(small_json(", \"continuing_subword_prefix\": \"##\"")), "continuing_subword_prefix");
  EXPECT_ERROR_HAS(parse_json(small_json(", \"unk_token\": \"<nope>\"")), "unk_token '<nope>' is not a token");
  EXPECT_ERROR_HAS(parse_json(small_json("", ", \"normalizer\": {\"type\": \"Lowercase\"}")),
                   "normalizer 'Lowercase' is not supported");
  EXPECT_ERROR_HAS(parse_json(replaced("\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true",
                                       "\"type\": \"Whitespace\"")),
                   "pre_tokenizer of type 'Whitespace'");
  EXPECT_ERROR_HAS(parse_json(replaced("\"add_prefix_space\": false", "\"add_prefix_space\": true")),
                   "add_prefix_space");
  EXPECT_ERROR_HAS(
      parse_json(replaced(
          "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
          R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"},
             {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})")),
      "Split regex '\\\\w+' is not one h2o implements");
  EXPECT_ERROR_HAS(
      parse_json(replaced("\"decoder\": {\"type\": \"ByteLevel\"}", "\"decoder\": {\"type\": \"WordPiece\"}")),
      "decoder 'WordPiece'");
  EXPECT_ERROR_HAS(parse_json(small_json("", ", \"post_processor\": {\"type\": \"RobertaProcessing\"}")),
                   "post_processor 'RobertaProcessing'");
  EXPECT_ERROR_HAS(parse_json(small_json("", R"(, "post_processor": {"type": "TemplateProcessing",
                     "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                     "special_tokens": {}})")),
                   "special token '<s>' must map to exactly one id");
  EXPECT_ERROR_HAS(parse_json(replaced("\"added_tokens\": [", "\"added_tokens\": [{\"id\": \"x\"}, ")),
                   "added_tokens id must be an integer token id");
}

TEST(TokenizerHostileTest, PostProcessorAndConfigs) {
  const std::string with_bos = small_json("", R"(, "post_processor": {"type": "Sequence", "processors": [
      {"type": "ByteLevel"}, {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
       "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [260], "tokens": ["<|endoftext|>"]}}}]})");
  Vocabulary v = parse_tokenizer_json(with_bos, "tokenizer.json");
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos, 260);
  EXPECT_EQ(make_tokenizer(v)->encode(" the"), (Ids{260, 258}));

  apply_tokenizer_config(v, R"({"add_bos_token": false, "eos_token": {"content": "<sep>"},
                               "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})",
                         "tokenizer_config.json");
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(v.eos, 262);
  EXPECT_EQ(v.chat_template, "D");
  apply_generation_config(v, R"({"eos_token_id": [260, 262], "bos_token_id": 260})", "generation_config.json");
  EXPECT_EQ(make_tokenizer(v)->end_of_generation_ids(), (Ids{260, 262}));

  EXPECT_ERROR_HAS(apply_tokenizer_config(v, R"({"bos_token": "<nope>"})", "tokenizer_config.json"),
                   "tokenizer_config.json: bos_token '<nope>' is not a token");
  EXPECT_ERROR_HAS(apply_tokenizer_config(v, R"({"add_bos_token": "yes"})", "tokenizer_config.json"),
                   "add_bos_token must be true or false");
  EXPECT_ERROR_HAS(apply_tokenizer_config(v, R"({"chat_template": 7})", "tokenizer_config.json"), "chat_template");
  EXPECT_ERROR_HAS(apply_tokenizer_config(v, "{", "tokenizer_config.json"), "malformed JSON");
  EXPECT_ERROR_HAS(apply_generation_config(v, R"({"eos_token_id": "2"})", "generation_config.json"),
                   "eos_token_id must be an integer token id");
  EXPECT_ERROR_HAS(apply_generation_config(v, R"({"eos_token_id": [1, 99999]})", "generation_config.json"),
                   "generation_config.json: eos_token_id 99999 is out of range for 263 tokens");
}

// ---- HF directories ----

class TempDir {
 public:
  TempDir()
      : path_(fs::path(::testing::TempDir()) /
              ("h2o_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ / name, std::ios::binary) << bytes;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(TokenizerHostileTest, HfDirectories) {
  EXPECT_ERROR_HAS(load_tokenizer_from_hf_dir("/nonexistent/dir"), "/nonexistent/dir: not a directory");
  {
    TempDir d;
    EXPECT_ERROR_HAS(load_tokenizer_from_hf_dir(d.path()), "no tokenizer.json");
    d.write("tokenizer.model", "x");
    EXPECT_ERROR_HAS(load_tokenizer_from_hf_dir(d.path()), "SentencePiece tokenizer.model");
  }
  {
    TempDir d;
    d.write("tokenizer.json", small_json());
    d.write("tokenizer_config.json", R"({"eos_token": "<|endoftext|>"})");
    d.write("chat_template.jinja", "{{ '<|im_start|>' }}");
    const auto tok = load_tokenizer_from_hf_dir(d.path());
    EXPECT_EQ(tok->eos_id(), 260);
    EXPECT_EQ(tok->vocabulary().chat_template, "{{ '<|im_start|>' }}");
    EXPECT_EQ(read_hf_chat_template(d.path()), "{{ '<|im_start|>' }}");
    EXPECT_EQ(load_tokenizer_for_model(d.path())->vocab_size(), 263);
    d.write("generation_config.json", "{\"eos_token_id\": 7777}");
    EXPECT_ERROR_HAS(load_tokenizer_from_hf_dir(d.path()), "generation_config.json: eos_token_id 7777 is out of range");
  }
  {
    // A tokenizer.json larger than accepted is refused before reading (a sparse file).
    TempDir d;
    d.write("tokenizer.json", "{}");
    fs::resize_file(fs::path(d.path()) / "tokenizer.json", (size_t{256} << 20) + 1);
    EXPECT_ERROR_HAS(load_tokenizer_from_hf_dir(d.path()), "is more than the 268435456 accepted");
  }
  EXPECT_EQ(read_hf_chat_template(test::shared_path("models/families/llama-tiny")), std::nullopt);
}

TEST(TokenizerHostileTest, ModelPathsWithoutVocabulary) {
  EXPECT_ERROR_HAS(load_tokenizer_for_model(""), "no model given");
  EXPECT_ERROR_HAS(load_tokenizer_for_model("/nonexistent.gguf"), "/nonexistent.gguf: cannot open");
  EXPECT_ERROR_HAS(load_tokenizer_for_model(test::model_path("stories260K.bin")), "needs --tokenizer");
  EXPECT_EQ(load_tokenizer_for_model(test::model_path("stories260K.bin"), test::model_path("tok512.bin"))->vocab_size(),
            512);
}

}  // namespace
}  // namespace h2o
