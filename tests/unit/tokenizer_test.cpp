#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "test_paths.h"
#include "tokenizer/spm_tokenizer.h"

namespace h2o {
namespace {

using Ids = std::vector<int32_t>;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A file under the test temp dir, unique per process so parallel test runs don't collide.
std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "h2o_tokenizer_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << path;
  return path;
}

const SpmTokenizer& bin_tokenizer() {
  static const SpmTokenizer tok(read_vocabulary_llama2c(test::model_path("tok512.bin"), 512));
  return tok;
}

const SpmTokenizer& gguf_tokenizer() {
  static const SpmTokenizer tok(read_vocabulary_gguf(GgufFile::open(test::model_path("stories260K-f32.gguf"))));
  return tok;
}

const std::string& story_text() {
  static const std::string text = read_file(test::shared_path("data/tinystories-valid.txt"));
  return text;
}

// ---- Reference encoder: the specification transcribed literally, O(n^2). ----

std::optional<int> hex_value(char c) {
  const std::string digits = "0123456789ABCDEF";
  const auto pos = digits.find(c);
  return pos == std::string::npos ? std::nullopt : std::optional<int>(static_cast<int>(pos));
}

// Splits bytes into code points; anything that isn't a complete sequence is one byte.
std::vector<std::string> reference_units(const std::string& s) {
  std::vector<std::string> units;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC0 && c < 0xE0 ? 2 : 1;
    bool whole = i + need <= s.size();
    for (size_t k = 1; whole && k < need; ++k) whole = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
    const size_t take = whole ? need : 1;
    units.push_back(s.substr(i, take));
    i += take;
  }
  return units;
}

Ids reference_encode(const SpmTokenizer& tok, const std::string& text, bool add_bos) {
  std::map<std::string, int32_t> mergeable;
  std::map<int, int32_t> byte_ids;
  int32_t unk = 0;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const TokenKind k = tok.kind(id);
    const std::string& p = tok.piece(id);
    if (k == TokenKind::Normal || k == TokenKind::UserDefined) {
      if (!p.empty()) mergeable.emplace(p, id);
    } else if (k == TokenKind::Byte) {
      byte_ids.emplace(*hex_value(p[3]) * 16 + *hex_value(p[4]), id);
    } else if (k == TokenKind::Unknown) {
      unk = id;
    }
  }
  Ids ids;
  if (!text.empty()) {
    for (const std::string& unit : reference_units(tok.add_dummy_prefix() ? " " + text : text)) {
      if (const auto it = mergeable.find(unit); it != mergeable.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (const char c : unit) {
        const auto it_byte = byte_ids.find(static_cast<unsigned char>(c));
        ids.push_back(it_byte == byte_ids.end() ? unk : it_byte->second);
      }
    }
  }
  for (;;) {
    std::optional<size_t> best;
    float best_score = 0;
    int32_t best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const auto it = mergeable.find(tok.piece(ids[i]) + tok.piece(ids[i + 1]));
      if (it == mergeable.end()) continue;
      const float s = tok.score(it->second);
      if (!best || s > best_score) {
        best = i;
        best_score = s;
        best_id = it->second;
      }
    }
    if (!best) break;
    ids[*best] = best_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(*best) + 1);
  }
  if (add_bos) ids.insert(ids.begin(), *tok.bos_id());
  return ids;
}

int32_t find_piece(const Tokenizer& tok, const std::string& piece) {
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.piece(id) == piece) return id;
  }
  return -1;
}

// ---- Building tokenizer files. ----

void append_u32(std::string& out, uint32_t v) {
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}

using PieceList = std::vector<std::pair<std::string, float>>;

// llama2.c layout: <unk>, BOS, EOS, 256 byte tokens, then `extra`.
PieceList llama2c_pieces(const PieceList& extra) {
  PieceList all = {{"<unk>", 0.0f}, {"\n<s>\n", 0.0f}, {"\n</s>\n", 0.0f}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    all.emplace_back(buf, 0.0f);
  }
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

std::string tokenizer_bin(const PieceList& pieces) {
  std::string out;
  append_u32(out, 16);
  for (const auto& [text, score] : pieces) {
    append_u32(out, std::bit_cast<uint32_t>(score));
    append_u32(out, static_cast<uint32_t>(text.size()));
    out += text;
  }
  return out;
}

// Byte offset of token `index`'s length field in a tokenizer.bin image.
size_t length_field_offset(const std::string& bin, int index) {
  size_t pos = 4;
  for (int i = 0; i < index; ++i) {
    uint32_t len = 0;
    for (int k = 3; k >= 0; --k) len = (len << 8) | static_cast<unsigned char>(bin[pos + 4 + static_cast<size_t>(k)]);
    pos += 8 + len;
  }
  return pos + 4;
}

void put_i32(std::string& bin, size_t offset, int32_t v) {
  std::string bytes;
  append_u32(bytes, static_cast<uint32_t>(v));
  bin.replace(offset, 4, bytes);
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected h2o::Error";
  return {};
}

std::string to_gguf_piece(const std::string& piece) {
  std::string out;
  for (const char c : piece) out += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  return out;
}

// GGUF tokenizer metadata for the given pieces (spaces written as U+2581).
GgufWriter gguf_tokenizer_writer(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                                 const std::vector<int32_t>& types) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> stored;
  for (const std::string& p : pieces) stored.push_back(to_gguf_piece(p));
  w.set_string_array("tokenizer.ggml.tokens", stored);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  return w;
}

// Small vocabulary: <unk> <s> </s>, bytes for 'a' 'b', then merges.
struct SmallVocab {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "<0x61>", "<0x62>", "a", "b", " ", "ab", " a"};
  std::vector<float> scores = {0, 0, 0, 0, 0, -1, -1, -1, -2, -3};
  std::vector<int32_t> types = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1};
};

std::unique_ptr<SpmTokenizer> parse_gguf(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  return std::make_unique<SpmTokenizer>(read_vocabulary_gguf(GgufFile::parse(bytes, "mem.gguf")));
}

// ---- Loading ----

TEST(TokenizerTest, LoadsLlama2cTokenizer) {
  const SpmTokenizer& tok = bin_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.piece(0), "<unk>");
  EXPECT_EQ(tok.piece(1), "<s>");  // stored as "\n<s>\n"
  EXPECT_EQ(tok.piece(2), "</s>");
  EXPECT_EQ(tok.kind(0), TokenKind::Unknown);
  EXPECT_EQ(tok.kind(1), TokenKind::Control);
  EXPECT_EQ(tok.kind(2), TokenKind::Control);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tok.kind(3 + b), TokenKind::Byte) << b;
  EXPECT_EQ(tok.piece(3 + 0x41), "<0x41>");
  EXPECT_EQ(tok.piece(259), " t");
  EXPECT_EQ(tok.kind(259), TokenKind::Normal);
  EXPECT_FLOAT_EQ(tok.score(260), -1.0f);
  EXPECT_TRUE(tok.add_dummy_prefix());
  EXPECT_THROW(tok.piece(512), Error);
  EXPECT_THROW(tok.kind(-1), Error);
}

TEST(TokenizerTest, BothSourcesGiveTheSameVocabulary) {
  const SpmTokenizer& a = bin_tokenizer();
  const SpmTokenizer& b = gguf_tokenizer();
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
  EXPECT_EQ(a.add_dummy_prefix(), b.add_dummy_prefix());
  for (int32_t id = 0; id < a.vocab_size(); ++id) {
    EXPECT_EQ(a.piece(id), b.piece(id)) << id;
    EXPECT_EQ(a.kind(id), b.kind(id)) << id;
    EXPECT_EQ(a.score(id), b.score(id)) << id;
  }
}

// ---- Encoding ----

TEST(TokenizerTest, EncodesKnownPrompt) {
  const Ids expected = {1, 403, 407, 261, 378};
  EXPECT_EQ(bin_tokenizer().encode("Once upon a time", true), expected);
  EXPECT_EQ(gguf_tokenizer().encode("Once upon a time", true), expected);
  EXPECT_EQ(bin_tokenizer().encode("Once upon a time", false), Ids(expected.begin() + 1, expected.end()));
}

TEST(TokenizerTest, EmptyTextGetsNoDummyPrefix) {
  EXPECT_EQ(bin_tokenizer().encode("", true), Ids{1});
  EXPECT_EQ(bin_tokenizer().encode("", false), Ids{});
}

TEST(TokenizerTest, BothSourcesEncodeStoryTextIdentically) {
  const std::string text = story_text().substr(0, 50000);
  const Ids a = bin_tokenizer().encode(text, true);
  EXPECT_EQ(a, gguf_tokenizer().encode(text, true));
  // A trained BPE compresses English text well below one token per byte.
  EXPECT_LT(a.size(), text.size() / 2);
}

TEST(TokenizerTest, UnknownCharactersFallBackToBytes) {
  const SpmTokenizer& tok = bin_tokenizer();
  const int32_t space = find_piece(tok, " ");
  ASSERT_GE(space, 0);
  // Invalid UTF-8: each byte is its own unit and becomes its <0xXX> token.
  EXPECT_EQ(tok.encode("\xff\xfe", false), (Ids{space, 3 + 0xFF, 3 + 0xFE}));
  // "日" (E6 97 A5) is not in the vocabulary.
  EXPECT_EQ(tok.encode("\xE6\x97\xA5", false), (Ids{space, 3 + 0xE6, 3 + 0x97, 3 + 0xA5}));
}

TEST(TokenizerTest, FastEncoderMatchesReferenceOnRandomSubstrings) {
  const SpmTokenizer& tok = bin_tokenizer();
  const std::string& text = story_text();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> start(0, text.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 400);
  for (int i = 0; i < 300; ++i) {
    // Arbitrary byte offsets, so some substrings start or end inside a UTF-8 sequence.
    const std::string s = text.substr(start(rng), length(rng));
    ASSERT_EQ(tok.encode(s, i % 2 == 0), reference_encode(tok, s, i % 2 == 0)) << "substring: " << s;
  }
  const std::string long_piece = text.substr(100000, 3000);
  EXPECT_EQ(tok.encode(long_piece, true), reference_encode(tok, long_piece, true));
}

TEST(TokenizerTest, FastEncoderMatchesReferenceOnRandomBytes) {
  const SpmTokenizer& tok = bin_tokenizer();
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> ascii(32, 126);
  std::uniform_int_distribution<size_t> length(0, 60);
  for (int i = 0; i < 300; ++i) {
    std::string s(length(rng), '\0');
    // Mostly printable ASCII (so merges happen) with some arbitrary bytes mixed in.
    for (char& c : s) c = static_cast<char>(byte(rng) < 200 ? ascii(rng) : byte(rng));
    ASSERT_EQ(tok.encode(s, true), reference_encode(tok, s, true));
    ASSERT_EQ(tok.decode(tok.encode(s, true)), s);
  }
}

Vocabulary load_llama2c_pieces(const std::string& name, const PieceList& extra) {
  const PieceList all = llama2c_pieces(extra);
  const std::string path = write_temp(name, tokenizer_bin(all));
  Vocabulary v = read_vocabulary_llama2c(path, static_cast<int32_t>(all.size()));
  std::remove(path.c_str());
  return v;
}

void expect_matches_reference_on_random_strings(const SpmTokenizer& tok, const std::string& alphabet, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> letter(0, alphabet.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 40);
  for (int i = 0; i < 2000; ++i) {
    std::string s(length(rng), ' ');
    for (char& c : s) c = alphabet[letter(rng)];
    ASSERT_EQ(tok.encode(s, false), reference_encode(tok, s, false)) << "'" << s << "'";
  }
}

// Equal scores almost everywhere: the leftmost-first tie rule decides, and merges chain.
// Pieces with inner spaces ("b b") make merges cross word starts.
TEST(TokenizerTest, FastEncoderMatchesReferenceOnTiedScores) {
  const PieceList extra = {{"a", 0},    {"b", 0},    {" ", 0},    {"aa", 0},  {"ab", 0},  {"ba", 0},
                           {"bb", 0},   {"aab", 0},  {"aba", 0},  {" a", 0},  {" b", 0},  {"abab", 0},
                           {"aaaa", 0}, {" ab", -1}, {"bab", -1}, {"b b", 0}, {"a a", -1}};
  const SpmTokenizer tok(load_llama2c_pieces("tied.bin", extra));
  expect_matches_reference_on_random_strings(tok, "ab ", 7);
  // " aaa": " a", "aa", "aa" tie and the leftmost (" a") merges first; then "aa".
  const int32_t first_extra = 3 + 256;
  EXPECT_EQ(tok.encode("aaa", false), (Ids{first_extra + 9, first_extra + 3}));
}

// Same, with no inner-space pieces, so the encoder may merge word by word; "c" has no
// piece and falls back to bytes, which sit inside words.
TEST(TokenizerTest, FastEncoderMatchesReferenceWordByWord) {
  const PieceList extra = {{"a", 0},   {"b", 0},    {" ", 0},    {"aa", 0}, {"ab", 0}, {"ba", -1},
                           {"bb", 0},  {"aab", 0},  {"aba", -1}, {" a", 0}, {" b", 0}, {"abab", 0},
                           {"bbb", 0}, {" ab", -1}, {"bab", 0},  {" aa", 0}};
  const SpmTokenizer tok(load_llama2c_pieces("words.bin", extra));
  expect_matches_reference_on_random_strings(tok, "ab c", 8);
}

// ---- Decoding ----

TEST(TokenizerTest, DecodePieceFollowsLlama2c) {
  const SpmTokenizer& tok = bin_tokenizer();
  ASSERT_EQ(tok.piece(259), " t");
  EXPECT_EQ(tok.decode_piece(*tok.bos_id(), 259), "t");  // dummy-prefix space dropped after BOS
  EXPECT_EQ(tok.decode_piece(-1, 259), " t");
  EXPECT_EQ(tok.decode_piece(260, 259), " t");
  EXPECT_EQ(tok.decode_piece(260, 3 + 0x41), "A");
  EXPECT_EQ(tok.decode_piece(260, 3 + 0x00), std::string(1, '\0'));
  EXPECT_EQ(tok.decode_piece(260, 3 + 0xFF), "\xff");
  EXPECT_EQ(tok.decode_piece(-1, *tok.bos_id()), "");
  EXPECT_EQ(tok.decode_piece(-1, *tok.eos_id()), "");
  EXPECT_EQ(tok.decode_piece(-1, *tok.bos_id(), /*special=*/true), "<s>");
  EXPECT_EQ(tok.decode_piece(-1, 0), "");  // <unk>
  EXPECT_THROW(tok.decode_piece(-1, 512), Error);
  EXPECT_THROW(tok.decode_piece(-1, -3), Error);
  const Ids ids = {1, 403, 407, 261, 378};
  EXPECT_EQ(tok.decode(ids), "Once upon a time");
  EXPECT_EQ(tok.decode(std::span<const int32_t>(ids).subspan(2), 403), " upon a time");
}

TEST(TokenizerTest, RoundTripsStoryText) {
  for (const SpmTokenizer* tok : {&bin_tokenizer(), &gguf_tokenizer()}) {
    const std::string text = story_text().substr(0, 50000);
    EXPECT_EQ(tok->decode(tok->encode(text, true)), text);
    // Without BOS the dummy-prefix space stays in the decoded text.
    EXPECT_EQ(tok->decode(tok->encode(text, false)), " " + text);
  }
}

TEST(TokenizerTest, RoundTripsTextOutsideTheVocabulary) {
  const SpmTokenizer& tok = bin_tokenizer();
  const std::vector<std::string> samples = {
      "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89",  // "héllo 日本 🎉"
      "\x01\x02\x7f\t\r\n\x1b[0m",
      "\xff\xfe",
      "a\x80"
      "b\xC3",                         // stray continuation byte, truncated sequence at the end
      "\xE6\x97",                      // truncated 3-byte sequence
      "\xC0\xAF \xED\xA0\x80",         // overlong '/', UTF-16 surrogate
      std::string("nul\0inside", 10),  // embedded NUL
      " leading space",
      "  two leading spaces",
      "trailing spaces  ",
      "\n",
      "<s> </s> <unk> <0x41>",  // special-looking text stays text
  };
  for (const std::string& s : samples) {
    const Ids ids = tok.encode(s, true);
    EXPECT_EQ(tok.decode(ids), s) << s;
    EXPECT_EQ(ids, reference_encode(tok, s, true)) << s;
    for (size_t i = 1; i < ids.size(); ++i) EXPECT_NE(tok.kind(ids[i]), TokenKind::Control) << s;
  }
}

TEST(TokenizerTest, EncodesWholeStoryFileQuickly) {
  const SpmTokenizer& tok = bin_tokenizer();
  const std::string& text = story_text();
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = tok.encode(text, true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("encoded %zu bytes into %zu tokens in %.3f s\n", text.size(), ids.size(), seconds);
  EXPECT_EQ(tok.decode(ids), text);
  // Loose bound (sanitizer builds are slow); a quadratic encoder takes minutes here.
  EXPECT_LT(seconds, 20.0);
}

// ---- Bad tokenizer.bin files ----

TEST(TokenizerTest, RejectsTruncatedTokenizerBin) {
  const std::string good = read_file(test::model_path("tok512.bin"));
  for (const size_t cut : {size_t{0}, size_t{2}, size_t{4}, size_t{7}, size_t{8}, size_t{12}, size_t{13}, size_t{100},
                           size_t{1000}, good.size() / 2, good.size() - 1}) {
    const std::string path = write_temp("cut.bin", good.substr(0, cut));
    const std::string msg = error_message([&] { read_vocabulary_llama2c(path, 512); });
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "cut " << cut << ": " << msg;
    std::remove(path.c_str());
  }
  // More tokens than the file holds.
  const std::string path = write_temp("short.bin", good);
  EXPECT_THROW(read_vocabulary_llama2c(path, 513), Error);
  std::remove(path.c_str());
}

TEST(TokenizerTest, RejectsBadLengthsAndArguments) {
  const std::string good = read_file(test::model_path("tok512.bin"));
  std::string bad = good;
  put_i32(bad, length_field_offset(bad, 10), -5);
  std::string path = write_temp("negative.bin", bad);
  EXPECT_NE(error_message([&] { read_vocabulary_llama2c(path, 512); }).find("negative length"), std::string::npos);
  std::remove(path.c_str());

  bad = good;
  put_i32(bad, length_field_offset(bad, 300), std::numeric_limits<int32_t>::max());
  path = write_temp("huge.bin", bad);
  EXPECT_NE(error_message([&] { read_vocabulary_llama2c(path, 512); }).find("past the end"), std::string::npos);
  std::remove(path.c_str());

  bad = good;
  put_i32(bad, 0, -1);
  path = write_temp("header.bin", bad);
  EXPECT_THROW(read_vocabulary_llama2c(path, 512), Error);
  std::remove(path.c_str());

  EXPECT_THROW(read_vocabulary_llama2c(test::model_path("tok512.bin"), 0), Error);
  EXPECT_THROW(read_vocabulary_llama2c(test::model_path("tok512.bin"), 2),
               Error);  // no room for EOS
  EXPECT_THROW(read_vocabulary_llama2c(test::model_path("no-such-tokenizer.bin"), 512), Error);
}

// ---- GGUF metadata ----

TEST(TokenizerTest, GgufWithoutTokenizerIsAClearError) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  const std::string msg = error_message([&] { parse_gguf(w); });
  EXPECT_NE(msg.find("mem.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.ggml.model"), std::string::npos) << msg;
}

TEST(TokenizerTest, GgufWithOtherTokenizerModelIsRejected) {
  const SmallVocab v;
  GgufWriter w = gguf_tokenizer_writer(v.pieces, v.scores, v.types);
  w.set_string("tokenizer.ggml.model", "bert");
  const std::string msg = error_message([&] { parse_gguf(w); });
  EXPECT_NE(msg.find("'bert' is not supported"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt2"), std::string::npos) << msg;  // names the supported kinds
}

TEST(TokenizerTest, GgufSmallVocabularyEncodes) {
  const SmallVocab v;
  const auto owned = parse_gguf(gguf_tokenizer_writer(v.pieces, v.scores, v.types));
  const SpmTokenizer& tok = *owned;
  EXPECT_EQ(tok.piece(7), " ");
  EXPECT_EQ(tok.encode("ab", true), (Ids{1, 7, 8}));  // "ab" (-2) beats " a" (-3)
  EXPECT_EQ(tok.encode("ab", true), reference_encode(tok, "ab", true));
  EXPECT_EQ(tok.encode("c", false), (Ids{7, 0}));  // no <0x63> token: unknown
}

TEST(TokenizerTest, GgufAddSpacePrefixFalse) {
  const SmallVocab v;
  GgufWriter w = gguf_tokenizer_writer(v.pieces, v.scores, v.types);
  w.set_bool("tokenizer.ggml.add_space_prefix", false);
  const auto owned = parse_gguf(w);
  const SpmTokenizer& tok = *owned;
  EXPECT_FALSE(tok.add_dummy_prefix());
  EXPECT_EQ(tok.encode("ab", true), (Ids{1, 8}));
  EXPECT_EQ(tok.decode(tok.encode(" ab", true)), " ab");  // no prefix to drop
}

TEST(TokenizerTest, GgufInconsistentMetadataIsRejected) {
  const SmallVocab v;
  {
    std::vector<float> short_scores = v.scores;
    short_scores.pop_back();
    const std::string msg = error_message([&] { parse_gguf(gguf_tokenizer_writer(v.pieces, short_scores, v.types)); });
    EXPECT_NE(msg.find("tokenizer.ggml.scores"), std::string::npos) << msg;
  }
  {
    std::vector<int32_t> long_types = v.types;
    long_types.push_back(1);
    const std::string msg = error_message([&] { parse_gguf(gguf_tokenizer_writer(v.pieces, v.scores, long_types)); });
    EXPECT_NE(msg.find("tokenizer.ggml.token_type"), std::string::npos) << msg;
  }
  {
    std::vector<int32_t> bad_types = v.types;
    bad_types[5] = 9;
    EXPECT_THROW(parse_gguf(gguf_tokenizer_writer(v.pieces, v.scores, bad_types)), Error);
  }
  {
    GgufWriter w = gguf_tokenizer_writer(v.pieces, v.scores, v.types);
    w.set_u32("tokenizer.ggml.bos_token_id", 10);
    const std::string msg = error_message([&] { parse_gguf(w); });
    EXPECT_NE(msg.find("BOS"), std::string::npos) << msg;
  }
  {
    std::vector<std::string> bad_pieces = v.pieces;
    bad_pieces[3] = "<0xZZ>";  // typed as a byte token
    EXPECT_THROW(parse_gguf(gguf_tokenizer_writer(bad_pieces, v.scores, v.types)), Error);
  }
  {
    GgufWriter w = gguf_tokenizer_writer({}, {}, {});
    EXPECT_THROW(parse_gguf(w), Error);
  }
  {
    GgufWriter w = gguf_tokenizer_writer(v.pieces, v.scores, v.types);
    w.set_f32_array("tokenizer.ggml.tokens", v.scores);  // not strings
    EXPECT_THROW(parse_gguf(w), Error);
  }
}

}  // namespace
}  // namespace h2o
