// The hand-written pre-tokenizer matchers held to std::regex. On ASCII text the Unicode
// classes reduce to ASCII ones (\p{L} = [A-Za-z], \p{N} = [0-9], \s = [ \t\n\v\f\r],
// \p{P} = the ASCII punctuation below), so ECMAScript regexes written from
// model-families.md 3.3 give an independent reference for the backtracking semantics
// (optional space, \s+(?!\S), \s*[\r\n]+, digit groups, regex sequences and gaps).
#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

using Pieces = std::vector<std::string>;

// Applies each regex in turn to every piece, keeping matches and the gaps between them.
Pieces reference_split(const std::string& text, const std::vector<std::regex>& rules) {
  Pieces pieces;
  if (!text.empty()) pieces.push_back(text);
  for (const std::regex& re : rules) {
    Pieces next;
    for (const std::string& p : pieces) {
      size_t last = 0;
      for (auto it = std::sregex_iterator(p.begin(), p.end(), re); it != std::sregex_iterator(); ++it) {
        const auto pos = static_cast<size_t>(it->position());
        const auto len = static_cast<size_t>(it->length());
        if (len == 0) continue;
        if (pos > last) next.push_back(p.substr(last, pos - last));
        next.push_back(p.substr(pos, len));
        last = pos + len;
      }
      if (last < p.size()) next.push_back(p.substr(last));
    }
    pieces = std::move(next);
  }
  return pieces;
}

Pieces engine_split(PreTokenizerKind kind, const std::string& text) {
  PieceRanges ranges;
  PreTokenizer(kind).split(text, ranges);
  Pieces out;
  for (const auto& [b, e] : ranges) out.push_back(text.substr(b, e - b));
  return out;
}

const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+)";
const char* const kLlama3 =
    R"('[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"('[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// [\p{P}\$\+<=>\^~\|]: every ASCII punctuation or symbol character but the backtick.
const char* const kDefaultPunct = R"([!-/:-@\[-_{-~]+)";
const char* const kFalconPunct = R"([!-/:-@\[-`{-~]+)";

std::vector<std::regex> reference_rules(PreTokenizerKind kind) {
  const auto re = [](const char* s) { return std::regex(s, std::regex::ECMAScript); };
  switch (kind) {
    case PreTokenizerKind::Default:
      return {re(kDefaultPunct), re(kGpt2), re("[0-9]+"), re("[0-9][0-9][0-9]")};
    case PreTokenizerKind::Gpt2:
      return {re(kGpt2)};
    case PreTokenizerKind::Llama3:
      return {re(kLlama3)};
    case PreTokenizerKind::Qwen2:
      return {re(kQwen2)};
    case PreTokenizerKind::Smollm:
      return {re("[0-9]"), re(kGpt2)};
    case PreTokenizerKind::Falcon:
      break;
  }
  return {re(kFalconPunct), re(kGpt2), re("[0-9][0-9][0-9]")};
}

TEST(PreTokenizerTest, AsciiClassesAreWhatTheReferenceAssumes) {
  const std::string punct = "!\"#%&'()*,-./:;?@[\\]_{}";
  for (int c = 0; c < 128; ++c) {
    const uint8_t cls = unicode::classes(unicode::Unit{static_cast<char32_t>(c), 1, true});
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    const bool digit = c >= '0' && c <= '9';
    const bool space = c == ' ' || (c >= 9 && c <= 13);
    EXPECT_EQ((cls & unicode::kLetter) != 0, letter) << c;
    EXPECT_EQ((cls & unicode::kNumber) != 0, digit) << c;
    EXPECT_EQ((cls & unicode::kWhiteSpace) != 0, space) << c;
    EXPECT_EQ((cls & unicode::kPunct) != 0, c != 0 && punct.find(static_cast<char>(c)) != std::string::npos) << c;
  }
}

class PreTokenizerReferenceTest : public ::testing::TestWithParam<PreTokenizerKind> {};

TEST_P(PreTokenizerReferenceTest, MatchesStdRegexOnRandomAsciiText) {
  const std::vector<std::regex> rules = reference_rules(GetParam());
  // Letters of the contractions in both cases, digits, every kind of ASCII space,
  // punctuation and symbols of both classes, control characters that are not spaces.
  const std::string alphabet =
      "aAsStTrReEvVmMlLdDxZ0123456789      \t\n\n\r\r\v\f''''\"!.,-$+<=>^~|`_()[]{}\\/#\x01\x1f";
  std::mt19937 rng(20261129 + static_cast<unsigned>(GetParam()));
  std::uniform_int_distribution<size_t> letter(0, alphabet.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 24);
  for (int i = 0; i < 4000; ++i) {
    std::string s(length(rng), ' ');
    for (char& c : s) c = alphabet[letter(rng)];
    ASSERT_EQ(engine_split(GetParam(), s), reference_split(s, rules)) << "text: '" << printable_string(s) << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, PreTokenizerReferenceTest,
                         ::testing::Values(PreTokenizerKind::Default, PreTokenizerKind::Gpt2, PreTokenizerKind::Llama3,
                                           PreTokenizerKind::Qwen2, PreTokenizerKind::Smollm, PreTokenizerKind::Falcon),
                         [](const auto& info) {
                           std::string name(pre_tokenizer_name(info.param));
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// Beyond ASCII: Unicode letters, numbers and spaces as the regexes classify them.
TEST(PreTokenizerTest, UnicodeClasses) {
  // Arabic-Indic digits are \p{N}: Llama 3 groups them by three, Qwen2 splits each.
  EXPECT_EQ(engine_split(PreTokenizerKind::Llama3, "\u0663\u0664\u0665\u0666"),
            (Pieces{"\u0663\u0664\u0665", "\u0666"}));
  EXPECT_EQ(engine_split(PreTokenizerKind::Qwen2, "\u0663\u0664"), (Pieces{"\u0663", "\u0664"}));
  // NBSP is White_Space but not the ' ' of " ?\p{L}+": it stands alone before a word.
  EXPECT_EQ(engine_split(PreTokenizerKind::Gpt2, "a\u00A0b"), (Pieces{"a", "\u00A0", "b"}));
  // Llama 3 lets any non-letter, non-digit unit lead a word, NBSP and "(" included.
  EXPECT_EQ(engine_split(PreTokenizerKind::Llama3, "a\u00A0b(c"), (Pieces{"a", "\u00A0b", "(c"}));
  // CJK letters form one run; U+3000 is a space.
  EXPECT_EQ(engine_split(PreTokenizerKind::Gpt2, "\u65E5\u672C\u3000\u8A9E"),
            (Pieces{"\u65E5\u672C", "\u3000", "\u8A9E"}));
  // Combining marks (Mn) are not letters: they split from the base letter.
  EXPECT_EQ(engine_split(PreTokenizerKind::Gpt2, "e\u0301t"), (Pieces{"e", "\u0301", "t"}));
  // Bytes that are not UTF-8 belong to no class: they are "other" and never split a
  // piece inside a byte.
  EXPECT_EQ(engine_split(PreTokenizerKind::Gpt2, "a \xff\xfe b"), (Pieces{"a", " \xff\xfe", " b"}));
  EXPECT_EQ(engine_split(PreTokenizerKind::Llama3, "x\xE6\x97"), (Pieces{"x", "\xE6\x97"}));
  EXPECT_TRUE(engine_split(PreTokenizerKind::Gpt2, "").empty());
}

TEST(PreTokenizerTest, NamesAndRegexes) {
  EXPECT_EQ(pre_tokenizer_by_name("llama-bpe", "f").kind, PreTokenizerKind::Llama3);
  EXPECT_TRUE(pre_tokenizer_by_name("llama-bpe", "f").ignore_merges);
  EXPECT_TRUE(pre_tokenizer_by_name("llama3", "f").add_bos);
  EXPECT_EQ(pre_tokenizer_by_name("olmo", "f").kind, PreTokenizerKind::Gpt2);
  EXPECT_EQ(pre_tokenizer_by_name("gpt-2", "f").kind, PreTokenizerKind::Gpt2);
  EXPECT_TRUE(pre_tokenizer_by_name("qwen2", "f").nfc);
  EXPECT_EQ(pre_tokenizer_by_name("smollm", "f").kind, PreTokenizerKind::Smollm);
  EXPECT_EQ(pre_tokenizer_by_name("default", "f").kind, PreTokenizerKind::Default);
  try {
    pre_tokenizer_by_name("tekken", "model.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.gguf: unknown pre-tokenizer 'tekken'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("llama-bpe"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_EQ(
      pre_tokenizer_by_regex(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
      PreTokenizerKind::Llama3);
  EXPECT_EQ(
      pre_tokenizer_by_regex(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
      PreTokenizerKind::Qwen2);
  EXPECT_FALSE(pre_tokenizer_by_regex("\\p{L}+"));
}

}  // namespace
}  // namespace h2o
