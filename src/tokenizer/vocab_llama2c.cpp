// llama2.c's tokenizer.bin -> Vocabulary.
#include <bit>
#include <fstream>
#include <iterator>

#include "common/check.h"
#include "common/text_file.h"
#include "tokenizer/vocabulary.h"

namespace h2o {
namespace {

// Little-endian cursor over tokenizer.bin bytes; callers check remaining() first.
class LeReader {
 public:
  explicit LeReader(std::string_view data) : data_(data) {}
  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + static_cast<size_t>(k)]);
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
  if (parse_byte_token(piece)) return TokenKind::Byte;
  return TokenKind::Normal;
}

// llama2.c's export wraps BOS/EOS in newlines ("\n<s>\n") for its own printing; strip
// them so both sources report the same pieces.
std::string trim_newlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

Vocabulary read_vocabulary_llama2c(const std::string& path, int32_t vocab_size) {
  if (vocab_size <= 0) fail("{}: vocab size {} must be positive", path, vocab_size);
  if (static_cast<size_t>(vocab_size) > kMaxVocabTokens)
    fail("{}: {} tokens is more than the {} supported", path, vocab_size, kMaxVocabTokens);
  const std::string data = read_whole_file(path);
  LeReader in(data);
  if (in.remaining() < 4) fail("{}: file too short ({} bytes) for the max_token_length header", path, data.size());
  if (const int32_t max_len = in.i32(); max_len < 0) fail("{}: negative max_token_length {}", path, max_len);

  Vocabulary v;
  v.source = path;
  v.model = "llama";
  const auto n = static_cast<size_t>(vocab_size);
  v.tokens.reserve(n);
  v.scores.reserve(n);
  v.kinds.reserve(n);
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (in.remaining() < 8) fail("{}: file ends inside token {} of {} (offset {})", path, id, vocab_size, in.offset());
    const float score = in.f32();
    const int32_t len = in.i32();
    if (len < 0) fail("{}: token {} has negative length {}", path, id, len);
    if (static_cast<size_t>(len) > in.remaining()) {
      fail("{}: token {} length {} runs past the end of the file (offset {}, size {})", path, id, len, in.offset(),
           data.size());
    }
    const std::string_view raw = in.bytes(static_cast<size_t>(len));
    const TokenKind kind = llama2c_kind(id, raw);
    v.tokens.push_back(kind == TokenKind::Control ? trim_newlines(raw) : std::string(raw));
    v.scores.push_back(score);
    v.kinds.push_back(kind);
  }
  // Fixed by llama2.c's layout; run.c always prepends ' ', adds BOS, and ends a story at BOS.
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  v.bos_ends_generation = true;
  check_vocabulary(v);
  return v;
}

}  // namespace h2o
