#include "serve/text_stream.h"

#include <algorithm>

namespace h2o::serve {

size_t utf8_complete_prefix(std::string_view s) {
  // Walk back over at most three continuation bytes (10xxxxxx) to the last lead byte.
  const size_t n = s.size();
  size_t i = n;
  int continuation = 0;
  while (i > 0 && continuation < 3 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++continuation;
  }
  if (i == 0) return n;  // only continuation bytes: nothing can complete them
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = 0;
  if ((lead & 0xE0) == 0xC0) {
    need = 2;
  } else if ((lead & 0xF0) == 0xE0) {
    need = 3;
  } else if ((lead & 0xF8) == 0xF0) {
    need = 4;
  } else {
    return n;  // ASCII or an invalid lead byte: complete as it is
  }
  const size_t have = static_cast<size_t>(continuation) + 1;
  return have < need ? i - 1 : n;
}

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return {};
  held_.append(piece);
  // Earliest complete stop string: send what precedes it, drop the rest.
  size_t cut = std::string::npos;
  for (const std::string& stop : stops_) cut = std::min(cut, held_.find(stop));
  if (cut != std::string::npos) {
    std::string out = held_.substr(0, cut);
    held_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > hold; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  const size_t ready = utf8_complete_prefix(std::string_view(held_).substr(0, held_.size() - hold));
  std::string out = held_.substr(0, ready);
  held_.erase(0, ready);
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace h2o::serve
