#include "tokenizer/byte_bpe_tokenizer.h"

#include <fmt/format.h>

#include "common/check.h"
#include "format/gguf.h"
#include "tokenizer/pair_merger.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The bytes a normal token stands for: its characters mapped back through GPT-2's byte
// map. A token with a character outside the map decodes to its own UTF-8 text, as HF's
// ByteLevel decoder does.
std::string unmapped_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const unicode::Unit u = unicode::decode(text, pos);
    const auto byte = u.valid ? unicode::char_to_byte(u.cp) : std::nullopt;
    if (!byte) return std::string(text);
    out.push_back(static_cast<char>(*byte));
    pos += u.len;
  }
  return out;
}

}  // namespace

ByteBpeTokenizer::ByteBpeTokenizer(Vocabulary vocab)
    : Tokenizer(std::move(vocab)),
      pre_(pre_tokenizer_by_name(vocab_.pre.empty() ? "default" : vocab_.pre, vocab_.source).kind) {
  const std::string& source = vocab_.source;
  const size_t n = vocab_.tokens.size();
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenKind k = vocab_.kinds[i];
    const bool mapped = k == TokenKind::Normal || k == TokenKind::Byte;
    pieces_[i] = mapped ? unmapped_bytes(vocab_.tokens[i]) : vocab_.tokens[i];
  }

  // Text -> id as merges spell tokens: normal tokens in their stored (byte-mapped) form;
  // control and user-defined tokens are stored as literal text, so they are found by that
  // text byte-mapped (e.g. GPT-NeoX's whitespace tokens "ĠĠ"). First id wins.
  FlatMap<std::string_view, int32_t> by_text;
  by_text.reserve(n);
  std::vector<std::string> mapped_literals;
  mapped_literals.reserve(n / 64);
  for (size_t i = 0; i < n; ++i) {
    const TokenKind k = vocab_.kinds[i];
    if ((k == TokenKind::Normal || k == TokenKind::Byte) && !vocab_.tokens[i].empty())
      by_text.emplace(vocab_.tokens[i], static_cast<int32_t>(i));
  }
  for (size_t i = 0; i < n; ++i) {
    const TokenKind k = vocab_.kinds[i];
    if ((k == TokenKind::UserDefined || k == TokenKind::Control) && !vocab_.tokens[i].empty())
      mapped_literals.push_back(unicode::bytes_to_mapped(vocab_.tokens[i]));
  }
  for (size_t i = 0, j = 0; i < n; ++i) {
    const TokenKind k = vocab_.kinds[i];
    if ((k == TokenKind::UserDefined || k == TokenKind::Control) && !vocab_.tokens[i].empty())
      by_text.emplace(mapped_literals[j++], static_cast<int32_t>(i));
  }

  std::string ch;
  for (int b = 0; b < 256; ++b) {
    ch.clear();
    unicode::append_utf8(ch, unicode::byte_to_char(static_cast<uint8_t>(b)));
    const int32_t* id = by_text.find(ch);
    byte_token_[static_cast<size_t>(b)] = id ? *id : -1;
  }

  merges_.reserve(vocab_.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
    const std::string& left = vocab_.merges[rank].first;  // not a structured binding: the lambda captures it
    const std::string& right = vocab_.merges[rank].second;
    const auto find = [&](std::string_view text) {
      const int32_t* id = by_text.find(text);
      if (!id) {
        fail("{}: merge {} ('{} {}') names unknown token '{}'", source, rank, printable_string(left),
             printable_string(right), printable_string(text));
      }
      return *id;
    };
    joined.assign(left);
    joined.append(right);
    const int32_t l = find(left);
    const int32_t r = find(right);
    const int32_t merged = find(joined);
    merges_.emplace(pair_key(l, r), Merge{static_cast<int32_t>(rank), merged});  // duplicates: lowest rank wins
  }

  if (vocab_.ignore_merges) {
    whole_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (vocab_.kinds[i] == TokenKind::Normal && !pieces_[i].empty())
        whole_.emplace(pieces_[i], static_cast<int32_t>(i));
    }
  }
}

void ByteBpeTokenizer::encode_piece(std::string_view bytes, PairMerger& merger, std::vector<int32_t>& symbols,
                                    std::vector<int32_t>& out) const {
  if (vocab_.ignore_merges) {
    if (const int32_t* id = whole_.find(bytes)) {
      out.push_back(*id);
      return;
    }
  }
  symbols.clear();
  for (const char c : bytes) symbols.push_back(byte_token_[static_cast<unsigned char>(c)]);
  const auto lookup = [&](int32_t left, int32_t right) -> std::optional<MergeCandidate> {
    if (left < 0 || right < 0) return std::nullopt;
    const Merge* m = merges_.find(pair_key(left, right));
    if (!m) return std::nullopt;
    return MergeCandidate{static_cast<float>(m->rank), m->merged};  // ranks < 2^24: exact
  };
  const size_t count = symbols.size() > 1 ? merger.run(symbols, lookup) : symbols.size();
  for (size_t i = 0; i < count; ++i) {
    if (symbols[i] >= 0) {
      out.push_back(symbols[i]);
    } else if (vocab_.unk) {
      out.push_back(*vocab_.unk);
    } else {
      fail("{}: the text has a byte that no token of this vocabulary stands for", vocab_.source);
    }
  }
}

void ByteBpeTokenizer::encode_text(std::string_view text, bool /*starts_text*/, std::vector<int32_t>& out) const {
  std::string normalized;
  if (vocab_.nfc) {
    normalized = unicode::nfc(text);
    text = normalized;
  }
  PieceRanges ranges;
  pre_.split(text, ranges);
  PairMerger merger;
  std::vector<int32_t> symbols;
  // Words repeat: within one call, a piece seen before reuses its tokens (offset, count
  // into `cached`). Books encode several times faster this way.
  FlatMap<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int32_t> cached;
  for (const auto& [begin, end] : ranges) {
    const std::string_view piece = text.substr(begin, end - begin);
    if (const auto* hit = cache.find(piece)) {
      const auto first = cached.begin() + hit->first;
      out.insert(out.end(), first, first + hit->second);
      continue;
    }
    const size_t before = out.size();
    encode_piece(piece, merger, symbols, out);
    cache.emplace(piece,
                  std::make_pair(static_cast<uint32_t>(cached.size()), static_cast<uint32_t>(out.size() - before)));
    cached.insert(cached.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
  }
}

std::string ByteBpeTokenizer::decode_piece(int32_t /*prev*/, int32_t token, bool special) const {
  check_id(token);
  switch (vocab_.kinds[static_cast<size_t>(token)]) {
    case TokenKind::Control:
    case TokenKind::Unknown:
    case TokenKind::Unused:
      return special ? pieces_[static_cast<size_t>(token)] : std::string();
    case TokenKind::Normal:
    case TokenKind::UserDefined:
    case TokenKind::Byte:
      break;
  }
  return pieces_[static_cast<size_t>(token)];
}

std::string ByteBpeTokenizer::kind_name() const {
  return fmt::format("byte-level BPE (gpt2, pre-tokenizer {}{}{})", pre_tokenizer_name(pre_.kind()),
                     vocab_.nfc ? ", NFC" : "", vocab_.ignore_merges ? ", ignore_merges" : "");
}

}  // namespace h2o
