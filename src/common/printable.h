// Strings that come from files or requests (metadata, token pieces, request fields, file
// names) are arbitrary bytes: before one reaches a message, a log line or a terminal it is
// escaped here, so that a crafted file cannot move the cursor, retitle the terminal or
// forge a second log line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace h2o {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are not one
// (same strictness as nlohmann::json: no overlongs, surrogates or code points past U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i);

// `s` made safe to print and to put in JSON: valid UTF-8 is kept, control characters and
// invalid bytes become \xNN (and \n, \t, \r), backslash and double quote are escaped.
std::string printable_string(std::string_view s);
// Appends the escaped form of s[0, max_bytes) (never splitting a UTF-8 sequence) to `out`;
// returns the input bytes consumed.
size_t append_printable(std::string& out, std::string_view s, size_t max_bytes);

// A message made safe for a terminal or a log line: control characters (C0 but nothing
// else, DEL, and the C1 range U+0080-U+009F) and invalid UTF-8 bytes become \xNN; all
// else, quotes and backslashes included, is unchanged, so escaping twice changes nothing.
std::string terminal_safe(std::string_view message);

}  // namespace h2o
