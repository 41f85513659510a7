// Turns a sequence's decoded token pieces into text that is safe to send to a client:
// whole UTF-8 characters only (a character split over two byte tokens is held until it is
// complete), and never text that might be the start of a stop string (held until it
// cannot be, or cut when a stop string completes).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace h2o::serve {

// Length of the longest prefix of `s` that does not end inside a multi-byte UTF-8
// character. Bytes that can never become valid (stray continuation bytes, invalid lead
// bytes) are not held: they go out and are replaced by U+FFFD when dumped as JSON.
size_t utf8_complete_prefix(std::string_view s);

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {});

  // Adds one piece; returns the text that can be sent now (maybe empty). When a stop
  // string completes, returns the text before it and stopped() becomes true; later
  // pieces are ignored.
  std::string push(std::string_view piece);
  // The sequence ended without a stop string: everything still held.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // produced, not yet sent
  bool stopped_ = false;
};

}  // namespace h2o::serve
