// SentencePiece-style BPE tokenizer (the `llama` tokenizer model): tokens with scores,
// byte-fallback tokens <0xXX>, a dummy-prefix space, BOS/EOS ids. Loaded from GGUF
// metadata (tokenizer.ggml.*, where spaces are stored as U+2581) or from llama2.c's
// tokenizer.bin (where they are stored as plain spaces).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace h2o {

class GgufFile;

enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  // Throws h2o::Error if the metadata is missing or inconsistent, or the model is not `llama`.
  static Tokenizer from_gguf(const GgufFile& file);
  // llama2.c tokenizer.bin: int32 max_token_length, then per token {f32 score, i32 len, bytes}.
  static Tokenizer from_llama2c(const std::string& path, int32_t vocab_size);

  // Encodes text (dummy prefix added when the tokenizer asks for it); BOS first if add_bos.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;

  // Bytes that `token` contributes to the text when it follows `prev` (llama2.c's decode):
  // byte tokens give their raw byte, control tokens give nothing, and the leading space
  // of the first piece after BOS is dropped. Pieces may be invalid UTF-8 on their own.
  std::string decode_piece(int32_t prev, int32_t token) const;
  // Concatenation of decode_piece over a token list (prev of the first is `prev`).
  std::string decode(std::span<const int32_t> tokens, int32_t prev = -1) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // Raw piece text with U+2581 already turned into ' ' (as stored for display).
  const std::string& piece(int32_t id) const;
  TokenKind kind(int32_t id) const;
  float score(int32_t id) const;  // merge priority: higher merges first
  bool add_dummy_prefix() const { return add_dummy_prefix_; }

 private:
  std::vector<std::string> pieces_;  // spaces as ' '
  std::vector<float> scores_;
  std::vector<TokenKind> kinds_;
  // Normal and user-defined pieces only (first id wins): the pieces text may merge into.
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::array<int32_t, 256> byte_token_{};  // id of <0xXX> per byte, -1 if absent
  int32_t bos_id_ = 1;
  int32_t eos_id_ = 2;
  int32_t unk_id_ = 0;
  bool add_dummy_prefix_ = true;
  // True when no mergeable piece has a space after its first byte: merges then never
  // cross the start of a word, so encode() merges word by word (set by finish_loading).
  bool merge_per_word_ = false;

  // Checks the loaded vocabulary and builds piece_to_id_ and byte_token_; `source` names
  // the file in error messages.
  void finish_loading(const std::string& source);
  void check_id(int32_t id) const;  // throws h2o::Error unless 0 <= id < vocab_size()
};

}  // namespace h2o
