#include "tokenizer/spm_tokenizer.h"

#include <cmath>
#include <optional>
#include <span>

#include "common/check.h"
#include "tokenizer/pair_merger.h"

namespace h2o {
namespace {

// Length of the UTF-8 sequence starting at text[pos]. A byte that does not start a
// complete sequence (stray continuation byte, bad lead byte, truncated sequence) is a
// unit of its own, so any byte string splits into units and byte fallback keeps it intact.
size_t utf8_unit_length(std::string_view text, size_t pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  size_t want = 1;
  if ((lead & 0xE0) == 0xC0) {
    want = 2;
  } else if ((lead & 0xF0) == 0xE0) {
    want = 3;
  } else if ((lead & 0xF8) == 0xF0) {
    want = 4;
  }
  if (want == 1 || pos + want > text.size()) return 1;
  for (size_t k = 1; k < want; ++k) {
    if ((static_cast<unsigned char>(text[pos + k]) & 0xC0) != 0x80) return 1;
  }
  return want;
}

using PieceMap = std::unordered_map<std::string, int32_t>;

// Token(s) for one code point: its own piece, else one byte token per byte (or unk).
void append_unit(std::string_view unit, const PieceMap& piece_to_id, const std::array<int32_t, 256>& byte_token,
                 int32_t unk_id, std::vector<int32_t>& out) {
  // `unit` is at most 4 bytes; the temporary string stays in the small-string buffer.
  if (const auto it = piece_to_id.find(std::string(unit)); it != piece_to_id.end()) {
    out.push_back(it->second);
    return;
  }
  for (const char c : unit) {
    const int32_t id = byte_token[static_cast<unsigned char>(c)];
    out.push_back(id >= 0 ? id : unk_id);
  }
}

}  // namespace

SpmTokenizer::SpmTokenizer(Vocabulary vocab) : Tokenizer(std::move(vocab)) {
  const std::string& source = vocab_.source;
  const size_t n = vocab_.tokens.size();
  if (vocab_.scores.size() != n) fail("{}: a SentencePiece vocabulary needs one score per token", source);
  if (!vocab_.unk) fail("{}: a SentencePiece vocabulary needs an unknown token", source);
  unk_id_ = *vocab_.unk;
  pieces_ = vocab_.tokens;

  byte_token_.fill(-1);
  piece_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const TokenKind kind = vocab_.kinds[i];
    // The priority queue needs a total order on scores.
    if (std::isnan(vocab_.scores[i])) fail("{}: token {} has a NaN score", source, id);
    if (kind == TokenKind::Byte) {
      const auto byte = parse_byte_token(pieces_[i]);
      if (!byte) fail("{}: byte token {} has piece '{}', expected <0xXX>", source, id, pieces_[i]);
      if (byte_token_[*byte] < 0) byte_token_[*byte] = id;
    } else if ((kind == TokenKind::Normal || kind == TokenKind::UserDefined) && !pieces_[i].empty()) {
      // Only these may come out of text: plain text never turns into control, unknown,
      // unused or byte tokens by merging (as in SentencePiece). With the llama2.c vocab no
      // such piece is a concatenation of two others, so this matches run.c there. Empty
      // pieces could never be produced either. Duplicates: the first id wins.
      piece_to_id_.emplace(pieces_[i], id);
    }
  }
  // A merge (L, R) yields piece(L) + piece(R). If no mergeable piece has a space after
  // its first byte, a symbol whose piece starts with a space can never be the right side
  // of a merge (every symbol's piece is non-empty), so it starts an independent word.
  // Symbols come from mergeable pieces, byte pieces "<0xXX>" and the unknown piece.
  merge_per_word_ = !pieces_[static_cast<size_t>(unk_id_)].empty();
  for (const auto& [text, id] : piece_to_id_) {
    if (text.find(' ', 1) != std::string::npos) merge_per_word_ = false;
  }
}

void SpmTokenizer::encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const {
  std::vector<int32_t> symbols;
  symbols.reserve(text.size() + 1);
  // The dummy prefix makes the first word look like every other word (" Once" not "Once").
  if (add_dummy_prefix() && starts_text) append_unit(" ", piece_to_id_, byte_token_, unk_id_, symbols);
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_unit_length(text, pos);
    append_unit(text.substr(pos, len), piece_to_id_, byte_token_, unk_id_, symbols);
    pos += len;
  }
  std::string key;  // reused buffer for concatenated pieces
  const auto lookup = [&](int32_t left, int32_t right) -> std::optional<MergeCandidate> {
    key.assign(pieces_[static_cast<size_t>(left)]);
    key.append(pieces_[static_cast<size_t>(right)]);
    const auto it = piece_to_id_.find(key);
    if (it == piece_to_id_.end()) return std::nullopt;
    return MergeCandidate{-vocab_.scores[static_cast<size_t>(it->second)], it->second};
  };
  PairMerger merger;
  if (!merge_per_word_) {
    symbols.resize(merger.run(symbols, lookup));
    out.insert(out.end(), symbols.begin(), symbols.end());
    return;
  }
  // One big queue over the whole text is cache-hostile; words are independent here (see
  // the constructor), and each word's merges happen in the same order as in the global
  // greedy run, so merging each word on its own gives the identical result.
  const auto starts_word = [&](int32_t id) { return pieces_[static_cast<size_t>(id)].front() == ' '; };
  size_t begin = 0;
  while (begin < symbols.size()) {
    size_t end = begin + 1;
    while (end < symbols.size() && !starts_word(symbols[end])) ++end;
    const size_t count = merger.run(std::span<int32_t>(symbols).subspan(begin, end - begin), lookup);
    out.insert(out.end(), symbols.begin() + static_cast<std::ptrdiff_t>(begin),
               symbols.begin() + static_cast<std::ptrdiff_t>(begin + count));
    begin = end;
  }
}

std::string SpmTokenizer::decode_piece(int32_t prev, int32_t token, bool special) const {
  check_id(token);
  const std::string& text = pieces_[static_cast<size_t>(token)];
  switch (vocab_.kinds[static_cast<size_t>(token)]) {
    case TokenKind::Byte:
      return std::string(1, static_cast<char>(*parse_byte_token(text)));  // checked at load
    case TokenKind::Control:
    case TokenKind::Unknown:
    case TokenKind::Unused:
      return special ? text : std::string();
    case TokenKind::Normal:
    case TokenKind::UserDefined:
      break;
  }
  // The space that encode() added as a dummy prefix is not part of the text.
  if (prev >= 0 && prev == vocab_.bos && add_dummy_prefix() && !text.empty() && text.front() == ' ')
    return text.substr(1);
  return text;
}

float SpmTokenizer::score(int32_t id) const {
  check_id(id);
  return vocab_.scores[static_cast<size_t>(id)];
}

}  // namespace h2o
