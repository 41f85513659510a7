// The byte-level BPE merge (linked list + priority queue + per-call piece cache + whole-piece
// lookup) held to the specification transcribed literally (model-families.md 3.4, 3.5):
// map each byte through GPT-2's byte map (written here again), then repeatedly merge the
// leftmost adjacent pair of lowest rank until none is left. Pieces come from the engine's
// pre-tokenizer, which tokenizer_pretokenizer_test.cpp and the goldens check.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/text_file.h"
#include "format/gguf.h"
#include "test_paths.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

using Ids = std::vector<int32_t>;

// bytes_to_unicode() as GPT-2's encoder.py defines it.
std::string byte_mapped(unsigned char b) {
  std::vector<int> printable;
  for (int c = '!'; c <= '~'; ++c) printable.push_back(c);
  for (int c = 0xA1; c <= 0xAC; ++c) printable.push_back(c);
  for (int c = 0xAE; c <= 0xFF; ++c) printable.push_back(c);
  int cp = -1;
  int next = 256;
  for (int x = 0; x < 256; ++x) {
    const bool keep = std::find(printable.begin(), printable.end(), x) != printable.end();
    const int mapped = keep ? x : next++;
    if (x == b) cp = mapped;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

class ReferenceBpe {
 public:
  explicit ReferenceBpe(const Tokenizer& tok) : v_(tok.vocabulary()) {
    for (int b = 0; b < 256; ++b) map_[b] = byte_mapped(static_cast<unsigned char>(b));
    for (size_t r = 0; r < v_.merges.size(); ++r) ranks_.emplace(v_.merges[r], r);
    // Normal tokens by their stored text; added tokens by their text byte-mapped.
    for (size_t i = 0; i < v_.tokens.size(); ++i) {
      if (v_.kinds[i] == TokenKind::Normal) ids_.emplace(v_.tokens[i], static_cast<int32_t>(i));
    }
    for (size_t i = 0; i < v_.tokens.size(); ++i) {
      if (v_.kinds[i] == TokenKind::Control || v_.kinds[i] == TokenKind::UserDefined)
        ids_.emplace(mapped(v_.tokens[i]), static_cast<int32_t>(i));
    }
  }

  std::string mapped(const std::string& bytes) const {
    std::string s;
    for (const char c : bytes) s += map_[static_cast<unsigned char>(c)];
    return s;
  }

  Ids encode_piece(const std::string& bytes) {
    if (const auto it = memo_.find(bytes); it != memo_.end()) return it->second;
    Ids out;
    const auto whole = ids_.find(mapped(bytes));
    if (v_.ignore_merges && whole != ids_.end() && v_.kinds[static_cast<size_t>(whole->second)] == TokenKind::Normal) {
      out.push_back(whole->second);
    } else {
      std::vector<std::string> symbols;
      for (const char c : bytes) symbols.push_back(map_[static_cast<unsigned char>(c)]);
      for (;;) {
        size_t best = symbols.size();
        size_t best_rank = 0;
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
          const auto it = ranks_.find({symbols[i], symbols[i + 1]});
          if (it != ranks_.end() && (best == symbols.size() || it->second < best_rank)) {
            best = i;
            best_rank = it->second;
          }
        }
        if (best == symbols.size()) break;
        symbols[best] += symbols[best + 1];
        symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      }
      for (const std::string& s : symbols) out.push_back(ids_.at(s));
    }
    memo_.emplace(bytes, out);
    return out;
  }

  Ids encode(const std::string& raw, PreTokenizerKind kind) {
    const std::string text = v_.nfc ? unicode::nfc(raw) : raw;
    PieceRanges ranges;
    PreTokenizer(kind).split(text, ranges);
    Ids out;
    for (const auto& [b, e] : ranges) {
      const Ids ids = encode_piece(text.substr(b, e - b));
      out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
  }

 private:
  const Vocabulary& v_;
  std::string map_[256];
  std::map<std::pair<std::string, std::string>, size_t> ranks_;
  std::map<std::string, int32_t> ids_;
  std::map<std::string, Ids> memo_;
};

PreTokenizerKind kind_of(const Tokenizer& tok) {
  return pre_tokenizer_by_name(tok.vocabulary().pre, tok.vocabulary().source).kind;
}

const std::string& corpus() {
  static const std::string text = read_text_file(test::shared_path("data/wikitext2-test.raw")).substr(0, 400000) +
                                  read_text_file(test::shared_path("data/tinystories-valid.txt")).substr(0, 200000);
  return text;
}

class ByteBpeReferenceTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ByteBpeReferenceTest, RandomSubstringsMatchTheReference) {
  const auto tok = load_tokenizer_for_model(test::shared_path(std::string("models/families/") + GetParam()));
  ReferenceBpe ref(*tok);
  const PreTokenizerKind kind = kind_of(*tok);
  const std::string& text = corpus();
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> start(0, text.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 600);
  for (int i = 0; i < 300; ++i) {
    // Arbitrary byte offsets: some substrings start or end inside a UTF-8 sequence.
    const std::string s = text.substr(start(rng), length(rng));
    ASSERT_EQ(tok->encode(s, false), ref.encode(s, kind)) << printable_string(s);
  }
  // Random bytes: every byte value, mostly invalid UTF-8.
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 300; ++i) {
    std::string s(length(rng) / 8, '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    const Ids ids = tok->encode(s, false);
    ASSERT_EQ(ids, ref.encode(s, kind)) << printable_string(s);
    if (!tok->vocabulary().nfc) ASSERT_EQ(tok->decode(ids), s);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, ByteBpeReferenceTest,
                         ::testing::Values("llama3-tiny.gguf", "qwen2-tiny.gguf", "neox-tiny.gguf", "opt-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// A whole book at once (the per-call piece cache on), as perplexity encodes it.
TEST(ByteBpeReferenceTest2, WholeBookMatchesTheReference) {
  const auto tok = load_tokenizer_for_model(test::shared_path("models/families/llama3-tiny.gguf"));
  const std::string book = read_text_file(test::shared_path("data/austen-pride-and-prejudice-flat.txt"));
  ReferenceBpe ref(*tok);
  const Ids ids = tok->encode(book, false);
  EXPECT_EQ(ids, ref.encode(book, kind_of(*tok)));
  EXPECT_EQ(tok->decode(ids), book);
  // A trained BPE compresses English text well below one token per byte.
  EXPECT_LT(ids.size(), book.size() / 3);
}

}  // namespace
}  // namespace h2o
