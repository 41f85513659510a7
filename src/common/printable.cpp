#include "common/printable.h"

#include <fmt/format.h>

#include <cstdint>

namespace h2o {

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const auto b1 = static_cast<uint8_t>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

size_t append_printable(std::string& out, std::string_view s, size_t max_bytes) {
  size_t i = 0;
  while (i < s.size() && i < max_bytes) {
    const char c = s[i];
    const size_t len = utf8_sequence_length(s, i);
    // C1 controls (U+0080-U+009F, encoded C2 80-C2 9F) act like ESC sequences on some terminals.
    const bool c1 = len == 2 && static_cast<uint8_t>(c) == 0xC2 && static_cast<uint8_t>(s[i + 1]) < 0xA0;
    if (len > 1 && !c1) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    if (c1) {
      out += fmt::format("\\xC2\\x{:02X}", static_cast<uint8_t>(s[i + 1]));
      i += 2;
      continue;
    }
    const auto b = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (len == 0 || b < 0x20 || b == 0x7F) {
      out += fmt::format("\\x{:02X}", b);
    } else {
      out += c;
    }
    ++i;
  }
  return i;
}

std::string printable_string(std::string_view s) {
  std::string out;
  append_printable(out, s, s.size());
  return out;
}

std::string terminal_safe(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  size_t i = 0;
  while (i < message.size()) {
    const size_t len = utf8_sequence_length(message, i);
    const auto b = static_cast<uint8_t>(message[i]);
    if (len == 1 && b >= 0x20 && b != 0x7F) {
      out += message[i++];
    } else if (len > 1 && !(b == 0xC2 && static_cast<uint8_t>(message[i + 1]) < 0xA0)) {
      out.append(message.substr(i, len));
      i += len;
    } else {
      out += fmt::format("\\x{:02X}", b);  // a control character or a byte of invalid UTF-8
      ++i;
    }
  }
  return out;
}

}  // namespace h2o
