// Unicode facts the byte-level BPE tokenizers need: UTF-8 decoding that never fails (a
// byte that does not start a valid sequence is a unit of its own), the general-category
// classes and White_Space that the pre-tokenizer regexes test (\p{L}, \p{N}, \p{P}, \s),
// NFC normalisation, and GPT-2's byte <-> character map.
//
// Categories and normalisation come from utf8proc (Debian's libutf8proc, Unicode 15):
// std::regex cannot test \p{L} at all, a hand-made table drifts from the standard, and
// the reference tokenizers (HF tokenizers via Oniguruma, llama.cpp's generated tables)
// classify by the Unicode database, so a maintained copy of that database is what makes
// the splits exact. NFC (Qwen2's normalizer) needs the composition tables too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace h2o::unicode {

// One unit of a byte string: a valid UTF-8 sequence (shortest form, no surrogates, at most
// U+10FFFF) or a single byte that does not start one (valid = false, cp = that byte).
struct Unit {
  char32_t cp = 0;
  uint8_t len = 1;
  bool valid = true;
};
Unit decode(std::string_view text, size_t pos);

void append_utf8(std::string& out, char32_t cp);

// Classes of a code point as the pre-tokenizer regexes see them.
enum CharClass : uint8_t {
  kLetter = 1,      // \p{L}: Lu Ll Lt Lm Lo
  kNumber = 2,      // \p{N}: Nd Nl No (also Rust's char::is_numeric, HF's Digits)
  kPunct = 4,       // \p{P}: Pc Pd Ps Pe Pi Pf Po
  kWhiteSpace = 8,  // \s: the White_Space property
};
// Bitwise OR of CharClass; 0 for invalid units and everything else.
uint8_t classes(const Unit& u);

// Unicode White_Space (PropList.txt). It equals Oniguruma's \s: the Zs, Zl, Zp categories
// plus U+0009..U+000D and U+0085 (tests check this against PropList.txt).
bool is_white_space(char32_t cp);

// NFC of every valid run of `text`; bytes that are not valid UTF-8 are kept as they are.
std::string nfc(std::string_view text);

// GPT-2's reversible byte map (model-families.md 3.4): printable bytes map to the same
// code point, the other 68 to U+0100.. in byte order.
char32_t byte_to_char(uint8_t byte);
std::optional<uint8_t> char_to_byte(char32_t cp);
// `bytes` with every byte replaced by its mapped character, UTF-8 encoded.
std::string bytes_to_mapped(std::string_view bytes);

}  // namespace h2o::unicode
