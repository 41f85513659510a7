// libFuzzer target for the stop-string and UTF-8 hold-back stream (serve/text_stream),
// held to a simple reference: the concatenation of all pieces, cut before the earliest
// occurrence of any stop string. Whatever the pieces and stops, the stream must emit
// exactly that text, each emission must extend what was sent (never take text back), and
// no emission may end inside a UTF-8 character that the bytes after it continue.
//
// Input: byte 0 = number of stop strings (0-3); each stop is a length byte and its bytes;
// the rest is split into pieces, each a length byte and its bytes.
#include <string>
#include <vector>

#include "serve/text_stream.h"

namespace {

// Reference: the whole text cut before the earliest stop (nullopt position if none).
std::string expected_text(const std::string& all, const std::vector<std::string>& stops, bool* stopped) {
  size_t cut = std::string::npos;
  for (const std::string& s : stops) {
    if (!s.empty()) cut = std::min(cut, all.find(s));
  }
  *stopped = cut != std::string::npos;
  return *stopped ? all.substr(0, cut) : all;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Whether `s` ends with a multi-byte character's lead byte and fewer continuation bytes
// than it announces (so later bytes could complete it).
bool ends_inside_character(const std::string& s) {
  size_t i = s.size();
  int continuation = 0;
  while (i > 0 && continuation < 3 && is_continuation(static_cast<unsigned char>(s[i - 1]))) {
    --i;
    ++continuation;
  }
  if (i == 0) return false;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const int need = lead >= 0xF0 && lead <= 0xF7   ? 4
                   : lead >= 0xE0 && lead <= 0xEF ? 3
                   : lead >= 0xC0 && lead <= 0xDF ? 2
                                                  : 0;
  return need > 0 && continuation + 1 < need;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t at = 0;
  const auto take = [&](size_t n) {
    n = std::min(n, size - at);
    std::string s(reinterpret_cast<const char*>(data + at), n);
    at += n;
    return s;
  };
  if (size == 0) return 0;
  const int n_stops = data[at++] % 4;
  std::vector<std::string> stops;
  for (int i = 0; i < n_stops && at < size; ++i) stops.push_back(take(data[at++] % 16));
  std::vector<std::string> pieces;
  while (at < size) pieces.push_back(take(data[at++] % 16));

  h2o::serve::TextStream stream(stops);
  std::string all, sent;
  for (const std::string& p : pieces) {
    if (stream.stopped()) break;
    all += p;
    const std::string out = stream.push(p);
    sent += out;
    // Sent text only grows and is checked against the reference at the end; while the
    // stream runs it never stops inside a character that later bytes may complete.
    if (sent.size() > all.size() || all.compare(0, sent.size(), sent) != 0) __builtin_trap();
    // A character cut at the end of what was sent is wrong unless the next byte received
    // shows it can never complete (then the stream rightly lets the stray bytes go).
    const bool next_continues =
        sent.size() == all.size() || is_continuation(static_cast<unsigned char>(all[sent.size()]));
    if (!stream.stopped() && ends_inside_character(sent) && next_continues) __builtin_trap();
  }
  sent += stream.finish();
  bool stopped = false;
  const std::string want = expected_text(all, stops, &stopped);
  if (sent != want || stream.stopped() != stopped) __builtin_trap();
  return 0;
}
