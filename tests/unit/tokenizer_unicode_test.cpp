// The Unicode facts the pre-tokenizers rely on, checked against the Unicode Character
// Database files of Debian's unicode-data package (UnicodeData.txt, PropList.txt; the same
// Unicode version as libutf8proc): general categories for every code point, White_Space,
// and NFC on known compositions; and GPT-2's byte map.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/unicode.h"

namespace h2o {
namespace {

constexpr const char* kUcdDir = "/usr/share/unicode/";

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ';')) out.push_back(f);
  return out;
}

uint8_t expected_classes(const std::string& category) {
  if (category.empty()) return 0;
  if (category[0] == 'L') return unicode::kLetter;
  if (category[0] == 'N') return unicode::kNumber;
  if (category[0] == 'P') return unicode::kPunct;
  return 0;
}

std::set<char32_t> white_space_from_proplist() {
  std::ifstream in(std::string(kUcdDir) + "PropList.txt");
  EXPECT_TRUE(in) << "install Debian's unicode-data (scripts/setup.sh does)";
  std::set<char32_t> out;
  std::string line;
  while (std::getline(in, line)) {
    const size_t semi = line.find(';');
    if (line.empty() || line[0] == '#' || semi == std::string::npos) continue;
    const size_t hash = line.find('#', semi);
    std::string prop = line.substr(semi + 1, hash == std::string::npos ? std::string::npos : hash - semi - 1);
    prop.erase(0, prop.find_first_not_of(' '));
    prop.erase(prop.find_last_not_of(' ') + 1);
    if (prop != "White_Space") continue;  // not Pattern_White_Space
    const std::string range = line.substr(0, line.find_first_of(" ;"));
    const size_t dots = range.find("..");
    const auto first = static_cast<char32_t>(std::stoul(range.substr(0, dots), nullptr, 16));
    const auto last =
        dots == std::string::npos ? first : static_cast<char32_t>(std::stoul(range.substr(dots + 2), nullptr, 16));
    for (char32_t c = first; c <= last; ++c) out.insert(c);
  }
  return out;
}

TEST(UnicodeTest, CategoriesMatchUnicodeData) {
  std::ifstream in(std::string(kUcdDir) + "UnicodeData.txt");
  ASSERT_TRUE(in) << "install Debian's unicode-data (scripts/setup.sh does)";
  const std::set<char32_t> ws = white_space_from_proplist();
  ASSERT_EQ(ws.size(), 25u);
  std::vector<uint8_t> expected(0x110000, 0);
  std::string line;
  char32_t range_first = 0;
  size_t assigned = 0;
  while (std::getline(in, line)) {
    const auto f = split_fields(line);
    ASSERT_GE(f.size(), 3u) << line;
    const auto cp = static_cast<char32_t>(std::stoul(f[0], nullptr, 16));
    const uint8_t cls = expected_classes(f[2]);
    // Large blocks (CJK, Hangul, ...) are given as <..., First> / <..., Last> pairs.
    if (f[1].ends_with(", First>")) {
      range_first = cp;
      continue;
    }
    const char32_t first = f[1].ends_with(", Last>") ? range_first : cp;
    for (char32_t c = first; c <= cp; ++c) {
      expected[c] = cls;
      ++assigned;
    }
  }
  EXPECT_GT(assigned, 140000u);
  size_t mismatches = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;  // surrogates are not UTF-8
    const uint8_t want = static_cast<uint8_t>(expected[c] | (ws.count(c) ? unicode::kWhiteSpace : 0));
    const uint8_t got = unicode::classes(unicode::Unit{c, 1, true});
    if (got != want && ++mismatches <= 10)
      ADD_FAILURE() << std::hex << "U+" << static_cast<uint32_t>(c) << ": " << int(got) << " vs " << int(want);
    EXPECT_EQ(unicode::is_white_space(c), ws.count(c) == 1);
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(UnicodeTest, DecodesUtf8AndMarksEverythingElse) {
  const auto unit = [](std::string_view s) { return unicode::decode(s, 0); };
  EXPECT_EQ(unit("A").cp, U'A');
  EXPECT_EQ(unit("\xC3\xA9").cp, U'\u00E9');
  EXPECT_EQ(unit("\xC3\xA9").len, 2);
  EXPECT_EQ(unit("\xF0\x9F\x8E\x89").cp, U'\U0001F389');
  for (const std::string_view bad : {"\x80", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xC3",
                                     "\xE6\x97", "\xFF", "\xC3(\xA9"}) {
    const unicode::Unit u = unit(bad);
    EXPECT_FALSE(u.valid) << bad;
    EXPECT_EQ(u.len, 1) << bad;
    EXPECT_EQ(unicode::classes(u), 0) << bad;
  }
  std::string s;
  for (const char32_t c : {U'a', U'\u00E9', U'\u65E5', U'\U0001F389'}) unicode::append_utf8(s, c);
  EXPECT_EQ(s, "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x8E\x89");
}

TEST(UnicodeTest, Nfc) {
  EXPECT_EQ(unicode::nfc("cafe\u0301"), "caf\u00E9");
  EXPECT_EQ(unicode::nfc("A\u030Angstro\u0308m"), "\u00C5ngstr\u00F6m");
  EXPECT_EQ(unicode::nfc("\u212B"), "\u00C5");        // ANGSTROM SIGN: singleton decomposition
  EXPECT_EQ(unicode::nfc("\u1100\u1161"), "\uAC00");  // Hangul jamo compose
  EXPECT_EQ(unicode::nfc("a\u0301\u0302\u0303"), "\u00E1\u0302\u0303");
  EXPECT_EQ(unicode::nfc("plain ASCII\n"), "plain ASCII\n");
  EXPECT_EQ(unicode::nfc("e\xFF"
                         "e\u0301"),
            "e\xFF\u00E9");  // invalid bytes stay, runs around them normalise
  EXPECT_EQ(unicode::nfc("\xE6\x97"), "\xE6\x97");
  EXPECT_EQ(unicode::nfc(""), "");
}

TEST(UnicodeTest, Gpt2ByteMap) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = unicode::byte_to_char(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << b;
    EXPECT_EQ(unicode::char_to_byte(c), b);
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (printable) EXPECT_EQ(c, static_cast<char32_t>(b));
  }
  EXPECT_EQ(unicode::byte_to_char(' '), U'\u0120');   // Ġ
  EXPECT_EQ(unicode::byte_to_char('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(unicode::byte_to_char('\t'), U'\u0109');
  EXPECT_EQ(unicode::byte_to_char(0x7F), U'\u0121');
  EXPECT_EQ(unicode::byte_to_char(0xAD), U'\u0143');
  EXPECT_FALSE(unicode::char_to_byte(U' '));
  EXPECT_FALSE(unicode::char_to_byte(U'\u0144'));
  EXPECT_EQ(unicode::bytes_to_mapped(" a\n"),
            "\xC4\xA0"
            "a\xC4\x8A");
}

}  // namespace
}  // namespace h2o
