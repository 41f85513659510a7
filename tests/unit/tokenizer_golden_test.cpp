// Byte-level BPE against the reference tokenizer goldens (../shared/models/families,
// README section 1): every line of every golden file, for each vocabulary and each source
// that holds it (GGUF metadata and HF tokenizer.json), gives exactly the reference ids,
// with and without the post-processor's BOS; decoding gives the text back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/text_file.h"
#include "format/gguf.h"
#include "test_paths.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

using Ids = std::vector<int32_t>;

struct GoldenCase {
  std::string text;
  Ids ids;               // add_special_tokens = False, special-token text recognised
  Ids ids_with_special;  // add_special_tokens = True (the post-processor's BOS)
};

const std::vector<GoldenCase>& golden(const std::string& vocab) {
  static std::map<std::string, std::vector<GoldenCase>> cache;
  auto& cases = cache[vocab];
  if (cases.empty()) {
    const std::string text = read_text_file(test::shared_path("models/families/tokenizer-" + vocab + ".jsonl"));
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t end = text.find('\n', pos);
      const std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      pos = end == std::string::npos ? text.size() : end + 1;
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line);
      GoldenCase c{j["text"].get<std::string>(), j["ids"].get<Ids>(), {}};
      c.ids_with_special = j.contains("ids_with_special") ? j["ids_with_special"].get<Ids>() : c.ids;
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

struct Source {
  const char* vocab;  // golden file
  const char* model;  // under models/families/
};

std::ostream& operator<<(std::ostream& os, const Source& s) { return os << s.vocab << " from " << s.model; }

const Tokenizer& tokenizer_of(const Source& s) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[s.model];
  if (!slot) slot = load_tokenizer_for_model(test::shared_path(std::string("models/families/") + s.model));
  return *slot;
}

std::string show(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

class TokenizerGoldenTest : public ::testing::TestWithParam<Source> {};

TEST_P(TokenizerGoldenTest, EveryLineGivesTheReferenceIds) {
  const Tokenizer& tok = tokenizer_of(GetParam());
  const auto& cases = golden(GetParam().vocab);
  ASSERT_EQ(cases.size(), 334u);
  int failures = 0;
  for (const GoldenCase& c : cases) {
    const Ids ids = tok.encode(c.text, EncodeOptions{.add_bos = false, .parse_special = true});
    const Ids with = tok.encode(c.text, EncodeOptions{.parse_special = true});
    if (ids != c.ids || with != c.ids_with_special) {
      if (++failures <= 5) {
        ADD_FAILURE() << "text: " << printable_string(c.text) << "\n  expected " << show(c.ids) << "\n  got      "
                      << show(ids) << "\n  with special expected " << show(c.ids_with_special) << " got " << show(with);
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// decode(ids) == text on every line (special tokens printed), except where NFC changes
// the text (Qwen): there the decoding is the NFC form.
TEST_P(TokenizerGoldenTest, DecodingTheReferenceIdsGivesTheText) {
  const Tokenizer& tok = tokenizer_of(GetParam());
  const bool nfc = tok.vocabulary().nfc;
  int nfc_lines = 0;
  for (const GoldenCase& c : golden(GetParam().vocab)) {
    const std::string expected = nfc ? unicode::nfc(c.text) : c.text;
    nfc_lines += expected != c.text;
    EXPECT_EQ(tok.decode(c.ids, -1, /*special=*/true), expected) << printable_string(c.text);
    // Piece by piece, as a stream decodes: the pieces concatenate to the same bytes.
    std::string pieces;
    int32_t prev = -1;
    for (const int32_t id : c.ids_with_special) {
      pieces += tok.decode_piece(prev, id, /*special=*/true);
      prev = id;
    }
    const std::string bos = tok.add_bos() ? tok.piece(*tok.bos_id()) : "";
    EXPECT_EQ(pieces, bos + expected);
  }
  EXPECT_EQ(nfc_lines, nfc ? 3 : 0);  // the README's three decomposed-accent lines
}

// Plain text (no special-token parsing): decode(encode(text)) == text; control tokens
// never come out of ordinary text.
TEST_P(TokenizerGoldenTest, PlainTextRoundTrips) {
  const Tokenizer& tok = tokenizer_of(GetParam());
  for (const GoldenCase& c : golden(GetParam().vocab)) {
    const Ids ids = tok.encode(c.text);
    const std::string expected = tok.vocabulary().nfc ? unicode::nfc(c.text) : c.text;
    EXPECT_EQ(tok.decode(ids), expected) << printable_string(c.text);
    for (size_t i = tok.add_bos() ? 1 : 0; i < ids.size(); ++i)
      EXPECT_NE(tok.kind(ids[i]), TokenKind::Control) << printable_string(c.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizerGoldenTest,
                         ::testing::Values(Source{"llama3", "llama3-tiny.gguf"}, Source{"llama3", "llama-tiny"},
                                           Source{"qwen2", "qwen2-tiny.gguf"}, Source{"gpt2", "neox-tiny.gguf"},
                                           Source{"gpt2", "neox-tiny"}, Source{"opt", "opt-tiny"}),
                         [](const auto& info) {
                           std::string name = std::string(info.param.vocab) + "_" + info.param.model;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

const Tokenizer& family(const char* vocab, const char* model) { return tokenizer_of(Source{vocab, model}); }

TEST(TokenizerFamiliesTest, SpecialTokenTextIsTextUnlessAskedFor) {
  const Tokenizer& qwen = family("qwen2", "qwen2-tiny.gguf");
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  const Ids plain = qwen.encode(text);
  EXPECT_EQ(qwen.decode(plain), text);
  for (const int32_t id : plain) EXPECT_NE(qwen.kind(id), TokenKind::Control);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  const Ids special = qwen.encode(text, EncodeOptions{.parse_special = true});
  ASSERT_GE(special.size(), 3u);
  EXPECT_EQ(special.front(), 151644);  // <|im_start|>
  EXPECT_EQ(special.back(), 151645);   // <|im_end|>
  EXPECT_LT(special.size(), plain.size());
  // The bool form is llama_tokenize's add_special: special-token text stays text.
  EXPECT_EQ(qwen.encode(text, true), plain);
  // User-defined tokens (not special in tokenizer.json) are matched in any text, as HF does.
  EXPECT_EQ(qwen.encode("<think>"), (Ids{151667}));
  EXPECT_EQ(qwen.kind(151667), TokenKind::UserDefined);

  const Tokenizer& gpt2 = family("gpt2", "neox-tiny.gguf");
  EXPECT_EQ(gpt2.encode("<|endoftext|>", EncodeOptions{.parse_special = true}), (Ids{50256}));
  EXPECT_GT(gpt2.encode("<|endoftext|>").size(), 1u);
}

// "Hello world" ids are the goldens' (tokenizer-*.jsonl).
TEST(TokenizerFamiliesTest, BosFollowsTheVocabulary) {
  const std::string hello = "Hello world";
  const Tokenizer& llama3 = family("llama3", "llama3-tiny.gguf");
  EXPECT_TRUE(llama3.add_bos());
  EXPECT_EQ(llama3.encode(hello), (Ids{128000, 9906, 1917}));
  EXPECT_EQ(llama3.encode(hello, EncodeOptions{.add_bos = false}), (Ids{9906, 1917}));
  EXPECT_EQ(llama3.encode(hello, false), (Ids{9906, 1917}));
  EXPECT_EQ(llama3.encode(""), (Ids{128000}));
  EXPECT_EQ(llama3.encode(hello, EncodeOptions{.add_eos = true}), (Ids{128000, 9906, 1917, 128001}));

  // Qwen has a BOS id (from config.json) but adds none; GPT-2 likewise.
  const Tokenizer& qwen = family("qwen2", "qwen2-tiny.gguf");
  EXPECT_FALSE(qwen.add_bos());
  EXPECT_EQ(qwen.bos_id(), 151643);
  EXPECT_EQ(qwen.encode(hello), (Ids{9707, 1879}));
  EXPECT_TRUE(qwen.encode("").empty());
  EXPECT_EQ(qwen.encode(hello, EncodeOptions{.add_bos = true}), (Ids{151643, 9707, 1879}));

  const Tokenizer& neox = family("gpt2", "neox-tiny");
  EXPECT_FALSE(neox.add_bos());
  EXPECT_EQ(neox.encode(hello), (Ids{15496, 995}));

  const Tokenizer& opt = family("opt", "opt-tiny");
  EXPECT_TRUE(opt.add_bos());
  EXPECT_EQ(opt.encode(hello), (Ids{2, 15500, 999}));  // </s> first; GPT-2 ids + 4
}

TEST(TokenizerFamiliesTest, EndOfGenerationSets) {
  const auto eog = [](const Tokenizer& t) { return t.end_of_generation_ids(); };
  EXPECT_EQ(eog(family("llama3", "llama3-tiny.gguf")), (Ids{128001, 128009}));  // <|end_of_text|>, <|eot_id|>
  EXPECT_EQ(eog(family("llama3", "llama-tiny")), (Ids{128001, 128009}));
  EXPECT_EQ(eog(family("qwen2", "qwen2-tiny.gguf")), (Ids{151643, 151645}));  // <|endoftext|>, <|im_end|>
  EXPECT_EQ(eog(family("gpt2", "neox-tiny.gguf")), (Ids{50256}));
  EXPECT_EQ(eog(family("gpt2", "neox-tiny")), (Ids{50256}));
  // OPT: </s> only; its <|endoftext|> (50260) is an ordinary token of the vocabulary.
  EXPECT_EQ(eog(family("opt", "opt-tiny")), (Ids{2}));
  EXPECT_TRUE(family("opt", "opt-tiny").is_end_of_generation(2));
  EXPECT_FALSE(family("opt", "opt-tiny").is_end_of_generation(50260));
}

// The GGUF file and the HF directory of the same model hold the same vocabulary.
TEST(TokenizerFamiliesTest, GgufAndHfFormsAgree) {
  for (const auto& [gguf, hf] :
       {std::pair{"llama3-tiny.gguf", "llama-tiny"}, std::pair{"neox-tiny.gguf", "neox-tiny"}}) {
    const Tokenizer& a = family("", gguf);
    const Tokenizer& b = family("", hf);
    ASSERT_GE(a.vocab_size(), b.vocab_size()) << gguf;  // the GGUF pads with [PAD] tokens
    int differ = 0;
    for (int32_t id = 0; id < b.vocab_size(); ++id) differ += a.piece(id) != b.piece(id) || a.kind(id) != b.kind(id);
    EXPECT_EQ(differ, 0) << gguf;
    for (int32_t id = b.vocab_size(); id < a.vocab_size(); ++id) EXPECT_EQ(a.kind(id), TokenKind::Unused);
    EXPECT_EQ(a.add_bos(), b.add_bos());
    EXPECT_EQ(a.vocabulary().merges, b.vocabulary().merges) << gguf;
  }
}

TEST(TokenizerFamiliesTest, PiecesAreBytesAndMayEndInsideACharacter) {
  const Tokenizer& gpt2 = family("gpt2", "neox-tiny.gguf");
  const Ids ids = gpt2.encode("\xF0\x9F\x8E\x89");  // 🎉: no single token
  ASSERT_GT(ids.size(), 1u);
  std::string joined;
  for (const int32_t id : ids) {
    const std::string p = gpt2.decode_piece(-1, id);
    EXPECT_LT(p.size(), 4u);
    joined += p;
  }
  EXPECT_EQ(joined, "\xF0\x9F\x8E\x89");
  EXPECT_EQ(gpt2.piece(15496), "Hello");  // stored as "Hello"; display form is the bytes
  EXPECT_EQ(gpt2.piece(995), " world");   // stored as "Ġworld"
  EXPECT_EQ(gpt2.vocabulary().tokens[995], "\xC4\xA0world");
}

TEST(TokenizerFamiliesTest, DescribesItself) {
  const auto& llama3 = dynamic_cast<const ByteBpeTokenizer&>(family("llama3", "llama3-tiny.gguf"));
  EXPECT_EQ(llama3.pre_tokenizer(), PreTokenizerKind::Llama3);
  EXPECT_TRUE(llama3.vocabulary().ignore_merges);
  EXPECT_NE(llama3.describe().find("llama-bpe"), std::string::npos) << llama3.describe();
  EXPECT_TRUE(family("qwen2", "qwen2-tiny.gguf").vocabulary().nfc);
  EXPECT_FALSE(family("gpt2", "neox-tiny").vocabulary().nfc);
}

}  // namespace
}  // namespace h2o
