#include "tokenizer/tokenizer.h"

#include <bit>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>
#include <queue>
#include <span>

#include "common/check.h"
#include "common/text_file.h"
#include "format/gguf.h"

namespace h2o {
namespace {

// SentencePiece stores spaces inside pieces as U+2581 LOWER ONE EIGHTH BLOCK.
constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

std::string replace_space_markers(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.substr(pos, kSpaceMarker.size()) == kSpaceMarker) {
      out.push_back(' ');
      pos += kSpaceMarker.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

std::optional<uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  return std::nullopt;
}

// The byte a byte-fallback piece "<0xXX>" stands for.
std::optional<uint8_t> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return std::nullopt;
  const auto hi = hex_digit(piece[3]);
  const auto lo = hex_digit(piece[4]);
  if (!hi || !lo) return std::nullopt;
  return static_cast<uint8_t>((*hi << 4) | *lo);
}

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
void append_unit(std::string_view unit, const PieceMap& piece_to_id,
                 const std::array<int32_t, 256>& byte_token, int32_t unk_id,
                 std::vector<int32_t>& out) {
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

// Greedy BPE over a token sequence: repeatedly merge the adjacent pair whose
// concatenated pieces form the best-scoring piece, leftmost pair on ties (llama2.c's
// encode). Rescanning the whole sequence per merge is O(n^2); instead the symbols form a
// linked list and candidate pairs sit in a priority queue ordered (score desc, left
// position asc). A candidate goes stale when either side has changed since it was
// pushed; stale ones are skipped when popped. The queue always holds every current
// adjacent mergeable pair, so the pop order is exactly the greedy choice. One merger is
// reused across the words of a text so its buffers are allocated once.
class BpeMerger {
 public:
  BpeMerger(const std::vector<std::string>& pieces, const std::vector<float>& scores,
            const PieceMap& piece_to_id)
      : pieces_(pieces), scores_(scores), piece_to_id_(piece_to_id) {}

  // Merges `tokens` in place; returns how many tokens the merged sequence has.
  size_t run(std::span<int32_t> tokens) {
    const auto n = static_cast<int32_t>(tokens.size());
    symbols_.resize(tokens.size());
    for (int32_t i = 0; i < n; ++i) symbols_[i] = {tokens[i], i - 1, i + 1 < n ? i + 1 : -1};
    for (int32_t i = 0; i + 1 < n; ++i) consider(i);
    while (!queue_.empty()) {
      const Candidate c = queue_.top();
      queue_.pop();
      if (is_current(c)) apply(c);
    }
    // Symbol 0 is never absorbed (it is nobody's right neighbour), so the list starts there.
    size_t count = 0;
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols_[i].next) {
      tokens[count++] = symbols_[i].token;
    }
    return count;
  }

 private:
  struct Symbol {
    int32_t token;  // -1 once absorbed into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    int32_t left_token;
    int32_t right_token;
    int32_t merged;
  };
  // "a < b" in priority-queue terms: a pops later than b.
  struct PopsLater {
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.score != b.score) return a.score < b.score;
      return a.left > b.left;
    }
  };

  // Queues the pair (left, its right neighbour) if their concatenation is a piece.
  void consider(int32_t left) {
    const int32_t right = symbols_[left].next;
    if (right < 0) return;
    const int32_t lt = symbols_[left].token;
    const int32_t rt = symbols_[right].token;
    key_.assign(pieces_[lt]);
    key_.append(pieces_[rt]);
    const auto it = piece_to_id_.find(key_);
    if (it == piece_to_id_.end()) return;
    queue_.push({scores_[it->second], left, right, lt, rt, it->second});
  }

  // A merge turns the left symbol into a longer piece, so its token id changes; the right
  // symbol dies. So unchanged ids on both sides, still adjacent, mean the pair is current.
  bool is_current(const Candidate& c) const {
    const Symbol& l = symbols_[c.left];
    return l.token == c.left_token && l.next == c.right && symbols_[c.right].token == c.right_token;
  }

  void apply(const Candidate& c) {
    Symbol& l = symbols_[c.left];
    Symbol& r = symbols_[c.right];
    l.token = c.merged;
    l.next = r.next;
    if (r.next >= 0) symbols_[r.next].prev = c.left;
    r.token = -1;
    if (l.prev >= 0) consider(l.prev);
    consider(c.left);
  }

  const std::vector<std::string>& pieces_;
  const std::vector<float>& scores_;
  const PieceMap& piece_to_id_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Candidate, std::vector<Candidate>, PopsLater> queue_;
  std::string key_;  // reused buffer for concatenated pieces
};

// Little-endian cursor over tokenizer.bin bytes; callers check remaining() first.
class LeReader {
 public:
  explicit LeReader(std::string_view data) : data_(data) {}
  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int k = 3; k >= 0; --k)
      v = (v << 8) | static_cast<unsigned char>(data_[pos_ + static_cast<size_t>(k)]);
    pos_ += 4;
    return v;
  }
  int32_t i32() { return std::bit_cast<int32_t>(u32()); }
  float f32() { return std::bit_cast<float>(u32()); }
  std::string_view bytes(size_t n) {
    const std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Through the one input-file reader: refuses directories, FIFOs and devices, caps the size.
std::string read_whole_file(const std::string& path) {
  return read_text_file(path, "tokenizer file", size_t{64} << 20);
}

// tokenizer.bin has no token types; llama2.c's layout fixes them: 0 <unk>, 1 <s>, 2 </s>,
// then the 256 byte tokens, then the merges.
TokenKind llama2c_kind(int32_t id, std::string_view piece) {
  if (id == 0) return TokenKind::Unknown;
  if (id == 1 || id == 2) return TokenKind::Control;
  if (parse_byte_piece(piece)) return TokenKind::Byte;
  return TokenKind::Normal;
}

// llama2.c's export wraps BOS/EOS in newlines ("\n<s>\n") for its own printing; strip
// them so both sources report the same pieces.
std::string trim_newlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return std::string(s);
}

const GgufArray& require_array(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  if (!v) fail("{}: missing tokenizer metadata key {}", file.source_name(), key);
  return v->as_array(key);
}

int32_t token_id_or(const GgufFile& file, const std::string& key, int32_t fallback) {
  const GgufValue* v = file.find(key);
  if (!v) return fallback;
  const int64_t id = v->as_int(key);
  if (id < 0 || id > std::numeric_limits<int32_t>::max())
    fail("{}: {} = {} is not a valid token id", file.source_name(), key, id);
  return static_cast<int32_t>(id);
}

TokenKind gguf_kind(const GgufFile& file, size_t id, int64_t type) {
  if (type < 1 || type > 6)
    fail("{}: tokenizer.ggml.token_type[{}] = {} is not a known token type (1-6)",
         file.source_name(), id, type);
  return static_cast<TokenKind>(type);
}

}  // namespace

Tokenizer Tokenizer::from_llama2c(const std::string& path, int32_t vocab_size) {
  if (vocab_size <= 0) fail("{}: vocab size {} must be positive", path, vocab_size);
  const std::string data = read_whole_file(path);
  LeReader in(data);
  if (in.remaining() < 4)
    fail("{}: file too short ({} bytes) for the max_token_length header", path, data.size());
  if (const int32_t max_len = in.i32(); max_len < 0)
    fail("{}: negative max_token_length {}", path, max_len);

  Tokenizer t;
  const auto n = static_cast<size_t>(vocab_size);
  t.pieces_.reserve(n);
  t.scores_.reserve(n);
  t.kinds_.reserve(n);
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (in.remaining() < 8)
      fail("{}: file ends inside token {} of {} (offset {})", path, id, vocab_size, in.offset());
    const float score = in.f32();
    const int32_t len = in.i32();
    if (len < 0) fail("{}: token {} has negative length {}", path, id, len);
    if (static_cast<size_t>(len) > in.remaining()) {
      fail("{}: token {} length {} runs past the end of the file (offset {}, size {})", path, id,
           len, in.offset(), data.size());
    }
    const std::string_view raw = in.bytes(static_cast<size_t>(len));
    const TokenKind kind = llama2c_kind(id, raw);
    t.pieces_.push_back(kind == TokenKind::Control ? trim_newlines(raw) : std::string(raw));
    t.scores_.push_back(score);
    t.kinds_.push_back(kind);
  }
  // Fixed by llama2.c's layout; add_dummy_prefix_ stays true (run.c always prepends ' ').
  t.unk_id_ = 0;
  t.bos_id_ = 1;
  t.eos_id_ = 2;
  t.finish_loading(path);
  return t;
}

Tokenizer Tokenizer::from_gguf(const GgufFile& file) {
  const std::string& src = file.source_name();
  try {
    const auto model = file.get_string("tokenizer.ggml.model");
    if (!model)
      fail("{}: no tokenizer in the file (missing metadata key tokenizer.ggml.model)", src);
    if (*model != "llama") {
      fail(
          "{}: tokenizer model '{}' is not supported (only 'llama', SentencePiece BPE with scores)",
          src, *model);
    }
    const GgufArray& tokens = require_array(file, "tokenizer.ggml.tokens");
    const GgufArray& scores = require_array(file, "tokenizer.ggml.scores");
    const GgufValue* types_value = file.find("tokenizer.ggml.token_type");
    const GgufArray* types =
        types_value ? &types_value->as_array("tokenizer.ggml.token_type") : nullptr;
    const size_t n = tokens.items.size();
    if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", src);
    if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
      fail("{}: {} tokens is too many", src, n);
    if (scores.items.size() != n)
      fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", src, scores.items.size(), n);
    if (types && types->items.size() != n) {
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", src, types->items.size(),
           n);
    }

    Tokenizer t;
    t.pieces_.reserve(n);
    t.scores_.reserve(n);
    t.kinds_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const std::string& raw = tokens.items[i].as_string("tokenizer.ggml.tokens");
      t.pieces_.push_back(replace_space_markers(raw));
      t.scores_.push_back(static_cast<float>(scores.items[i].as_float("tokenizer.ggml.scores")));
      if (types) {
        t.kinds_.push_back(gguf_kind(file, i, types->items[i].as_int("tokenizer.ggml.token_type")));
      } else {
        // Without types, fall back to the llama2.c layout's conventions.
        t.kinds_.push_back(llama2c_kind(static_cast<int32_t>(i), raw));
      }
    }
    t.unk_id_ = token_id_or(file, "tokenizer.ggml.unknown_token_id", 0);
    t.bos_id_ = token_id_or(file, "tokenizer.ggml.bos_token_id", 1);
    t.eos_id_ = token_id_or(file, "tokenizer.ggml.eos_token_id", 2);
    if (const GgufValue* v = file.find("tokenizer.ggml.add_space_prefix")) {
      t.add_dummy_prefix_ = v->as_bool("tokenizer.ggml.add_space_prefix");
    }
    t.finish_loading(src);
    return t;
  } catch (const Error& e) {
    // GgufValue's accessors name only the key; say which file it was.
    const std::string_view msg = e.what();
    if (msg.starts_with(src + ": ")) throw;
    fail("{}: {}", src, msg);
  }
}

void Tokenizer::finish_loading(const std::string& source) {
  const auto n = pieces_.size();
  if (n == 0) fail("{}: empty vocabulary", source);
  const auto check_special = [&](const char* what, int32_t id) {
    if (id < 0 || static_cast<size_t>(id) >= n)
      fail("{}: {} token id {} is out of range for {} tokens", source, what, id, n);
  };
  check_special("BOS", bos_id_);
  check_special("EOS", eos_id_);
  check_special("unknown", unk_id_);

  byte_token_.fill(-1);
  piece_to_id_.clear();
  piece_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    // The priority queue needs a total order on scores.
    if (std::isnan(scores_[i])) fail("{}: token {} has a NaN score", source, id);
    if (kinds_[i] == TokenKind::Byte) {
      const auto byte = parse_byte_piece(pieces_[i]);
      if (!byte) fail("{}: byte token {} has piece '{}', expected <0xXX>", source, id, pieces_[i]);
      if (byte_token_[*byte] < 0) byte_token_[*byte] = id;
    } else if ((kinds_[i] == TokenKind::Normal || kinds_[i] == TokenKind::UserDefined) &&
               !pieces_[i].empty()) {
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

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos) out.push_back(bos_id_);
  if (text.empty()) return out;
  // Symbol indices are int32_t; one symbol per byte at most, plus the prefix.
  if (text.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail("text of {} bytes is too long to encode", text.size());

  std::vector<int32_t> symbols;
  symbols.reserve(text.size() + 1);
  // The dummy prefix makes the first word look like every other word (" Once" not "Once").
  if (add_dummy_prefix_) append_unit(" ", piece_to_id_, byte_token_, unk_id_, symbols);
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_unit_length(text, pos);
    append_unit(text.substr(pos, len), piece_to_id_, byte_token_, unk_id_, symbols);
    pos += len;
  }
  BpeMerger merger(pieces_, scores_, piece_to_id_);
  if (!merge_per_word_) {
    symbols.resize(merger.run(symbols));
    out.insert(out.end(), symbols.begin(), symbols.end());
    return out;
  }
  // One big queue over the whole text is cache-hostile; words are independent here (see
  // finish_loading), and each word's merges happen in the same order as in the global
  // greedy run, so merging each word on its own gives the identical result.
  const auto starts_word = [&](int32_t id) {
    return pieces_[static_cast<size_t>(id)].front() == ' ';
  };
  size_t begin = 0;
  while (begin < symbols.size()) {
    size_t end = begin + 1;
    while (end < symbols.size() && !starts_word(symbols[end])) ++end;
    const size_t count = merger.run(std::span<int32_t>(symbols).subspan(begin, end - begin));
    out.insert(out.end(), symbols.begin() + static_cast<std::ptrdiff_t>(begin),
               symbols.begin() + static_cast<std::ptrdiff_t>(begin + count));
    begin = end;
  }
  return out;
}

std::string Tokenizer::decode_piece(int32_t prev, int32_t token) const {
  check_id(token);
  const std::string& text = pieces_[static_cast<size_t>(token)];
  switch (kinds_[static_cast<size_t>(token)]) {
    case TokenKind::Byte:
      return std::string(1, static_cast<char>(*parse_byte_piece(text)));  // checked at load
    case TokenKind::Control:
    case TokenKind::Unknown:
    case TokenKind::Unused:
      return {};
    case TokenKind::Normal:
    case TokenKind::UserDefined:
      break;
  }
  // The space that encode() added as a dummy prefix is not part of the text.
  if (prev == bos_id_ && add_dummy_prefix_ && !text.empty() && text.front() == ' ')
    return text.substr(1);
  return text;
}

std::string Tokenizer::decode(std::span<const int32_t> tokens, int32_t prev) const {
  std::string out;
  for (const int32_t token : tokens) {
    out += decode_piece(prev, token);
    prev = token;
  }
  return out;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("token id {} is out of range for a vocabulary of {} tokens", id, vocab_size());
}

const std::string& Tokenizer::piece(int32_t id) const {
  check_id(id);
  return pieces_[static_cast<size_t>(id)];
}

TokenKind Tokenizer::kind(int32_t id) const {
  check_id(id);
  return kinds_[static_cast<size_t>(id)];
}

float Tokenizer::score(int32_t id) const {
  check_id(id);
  return scores_[static_cast<size_t>(id)];
}

}  // namespace h2o
