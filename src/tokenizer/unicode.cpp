#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>
#include <memory>

#include "common/check.h"

namespace h2o::unicode {

Unit decode(std::string_view text, size_t pos) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[pos + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {lead, 1, true};
  size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((lead & 0xE0) == 0xC0) {
    len = 2, cp = lead & 0x1Fu, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3, cp = lead & 0x0Fu, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4, cp = lead & 0x07u, min = 0x10000;
  } else {
    return {lead, 1, false};
  }
  if (pos + len > text.size()) return {lead, 1, false};
  for (size_t k = 1; k < len; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return {lead, 1, false};
    cp = (cp << 6) | (byte(k) & 0x3Fu);
  }
  // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not valid UTF-8.
  if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return {lead, 1, false};
  return {cp, static_cast<uint8_t>(len), true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_white_space(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp == 0x85) return true;
  if (cp < 0xA0) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

namespace {

uint8_t classes_of(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return kPunct;
    default:
      return is_white_space(cp) ? kWhiteSpace : 0;
  }
}

// ASCII dominates real text: its classes once, in a table.
const std::array<uint8_t, 128>& ascii_classes() {
  static const std::array<uint8_t, 128> table = [] {
    std::array<uint8_t, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = classes_of(c);
    return t;
  }();
  return table;
}

// NFC never changes text whose code points are all below U+0300: combining marks,
// Hangul jamo and the singleton decompositions all lie above it.
bool nfc_is_identity(std::string_view run) {
  for (size_t pos = 0; pos < run.size();) {
    const Unit u = decode(run, pos);
    if (u.cp >= 0x300) return false;
    pos += u.len;
  }
  return true;
}

void append_nfc(std::string& out, std::string_view run) {
  if (run.empty()) return;
  if (nfc_is_identity(run)) {
    out.append(run);
    return;
  }
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()), static_cast<utf8proc_ssize_t>(run.size()),
                   &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(mapped, &std::free);
  // The run is valid UTF-8 (checked by the caller), so only memory can fail here.
  if (n < 0) fail("NFC normalisation failed: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
}

struct ByteMap {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 0x144> to_byte{};  // every mapped character is below U+0144
};

const ByteMap& byte_map() {
  static const ByteMap map = [] {
    ByteMap m;
    m.to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      m.to_char[static_cast<size_t>(b)] = c;
      m.to_byte[c] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return map;
}

}  // namespace

uint8_t classes(const Unit& u) {
  if (!u.valid) return 0;
  if (u.cp < 128) return ascii_classes()[u.cp];
  return classes_of(u.cp);
}

std::string nfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t run_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const Unit u = decode(text, pos);
    if (!u.valid) {
      append_nfc(out, text.substr(run_start, pos - run_start));
      out.push_back(text[pos]);
      run_start = pos + 1;
    }
    pos += u.len;
  }
  append_nfc(out, text.substr(run_start));
  return out;
}

char32_t byte_to_char(uint8_t byte) { return byte_map().to_char[byte]; }

std::optional<uint8_t> char_to_byte(char32_t cp) {
  if (cp >= byte_map().to_byte.size()) return std::nullopt;
  const int16_t b = byte_map().to_byte[cp];
  if (b < 0) return std::nullopt;
  return static_cast<uint8_t>(b);
}

std::string bytes_to_mapped(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_utf8(out, byte_to_char(static_cast<uint8_t>(c)));
  return out;
}

}  // namespace h2o::unicode
