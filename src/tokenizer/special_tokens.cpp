#include "tokenizer/special_tokens.h"

#include <algorithm>

#include "common/check.h"
#include "tokenizer/unicode.h"

namespace h2o {

SpecialTokenMatcher::SpecialTokenMatcher(const Vocabulary& v) : lstrip_(v.lstrip), rstrip_(v.rstrip) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const TokenKind k = v.kinds[i];
    if (v.tokens[i].empty()) continue;
    if (k == TokenKind::UserDefined) insert(v.tokens[i], static_cast<int32_t>(i), true);
    if (k == TokenKind::Control || k == TokenKind::Unknown) insert(v.tokens[i], static_cast<int32_t>(i), false);
  }
}

void SpecialTokenMatcher::insert(std::string_view text, int32_t id, bool always) {
  first_byte_[static_cast<unsigned char>(text[0])] |= always ? 1 : 2;
  uint32_t node = 0;
  for (const char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    auto& next = nodes_[node].next;
    const auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, uint32_t{0}),
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it != next.end() && it->first == byte) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<uint32_t>(nodes_.size());
    next.insert(it, {byte, child});  // invalidates `next`, not used again
    nodes_.emplace_back();
    node = child;
  }
  // Duplicate texts: the first id wins (as for every other text -> id lookup).
  int32_t& slot = always ? nodes_[node].always : nodes_[node].special;
  if (slot < 0) slot = id;
}

std::pair<size_t, int32_t> SpecialTokenMatcher::longest_at(std::string_view text, size_t pos,
                                                           bool parse_special) const {
  std::pair<size_t, int32_t> best{0, -1};
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = nodes_[node].next;
    const auto byte = static_cast<uint8_t>(text[i]);
    const auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, uint32_t{0}),
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it == next.end() || it->first != byte) break;
    node = it->second;
    const Node& n = nodes_[node];
    const int32_t id = n.always >= 0 ? n.always : parse_special ? n.special : -1;
    if (id >= 0) best = {i + 1 - pos, id};
  }
  return best;
}

namespace {

// Start of the unit that ends at `end` (stepping back over continuation bytes).
size_t previous_unit(std::string_view text, size_t begin, size_t end) {
  size_t p = end - 1;
  while (p > begin && end - p < 4 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  return p;
}

bool contains(const std::vector<int32_t>& sorted, int32_t id) {
  return std::binary_search(sorted.begin(), sorted.end(), id);
}

}  // namespace

void SpecialTokenMatcher::split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  const uint8_t wanted = parse_special ? 3 : 1;
  size_t raw = 0;  // start of the pending plain text
  for (size_t pos = 0; pos < text.size();) {
    if ((first_byte_[static_cast<unsigned char>(text[pos])] & wanted) == 0) {
      ++pos;
      continue;
    }
    const auto [len, id] = longest_at(text, pos, parse_special);
    if (id < 0) {
      ++pos;
      continue;
    }
    size_t begin = pos;
    size_t end = pos + len;
    if (contains(lstrip_, id)) {
      while (begin > raw) {
        const size_t p = previous_unit(text, raw, begin);
        const unicode::Unit u = unicode::decode(text, p);
        if (p + u.len != begin || !u.valid || !unicode::is_white_space(u.cp)) break;
        begin = p;
      }
    }
    if (contains(rstrip_, id)) {
      while (end < text.size()) {
        const unicode::Unit u = unicode::decode(text, end);
        if (!u.valid || !unicode::is_white_space(u.cp)) break;
        end += u.len;
      }
    }
    if (raw < begin) out.push_back({static_cast<uint32_t>(raw), static_cast<uint32_t>(begin), -1});
    out.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(end), id});
    pos = raw = end;
  }
  if (raw < text.size()) out.push_back({static_cast<uint32_t>(raw), static_cast<uint32_t>(text.size()), -1});
}

}  // namespace h2o
