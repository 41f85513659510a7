// SentencePiece-style BPE (tokenizer.ggml.model = "llama"; llama2.c's tokenizer.bin):
// tokens with scores, byte-fallback tokens <0xXX>, a dummy-prefix space. Text merges
// greedily, the best-scoring merged piece first (llama2.c's encode, llama.cpp's SPM).
#pragma once

#include <array>
#include <string>
#include <unordered_map>

#include "tokenizer/tokenizer.h"

namespace h2o {

class SpmTokenizer final : public Tokenizer {
 public:
  // Throws h2o::Error if the vocabulary is inconsistent (scores, byte tokens, ids).
  explicit SpmTokenizer(Vocabulary vocab);

  // Bytes of `token` after `prev` (llama2.c's decode): byte tokens give their raw byte,
  // control tokens nothing (their text if `special`), and the leading space of the first
  // piece after BOS is dropped (it was the dummy prefix).
  std::string decode_piece(int32_t prev, int32_t token, bool special = false) const override;

  float score(int32_t id) const;  // merge priority: higher merges first
  bool add_dummy_prefix() const { return vocab_.add_space_prefix; }

 private:
  // Normal and user-defined pieces only (first id wins): the pieces text may merge into.
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::array<int32_t, 256> byte_token_{};  // id of <0xXX> per byte, -1 if absent
  int32_t unk_id_ = 0;
  // True when no mergeable piece has a space after its first byte: merges then never
  // cross the start of a word, so encode_text() merges word by word.
  bool merge_per_word_ = false;

  void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const override;
  std::string kind_name() const override { return "SentencePiece BPE (llama)"; }
};

}  // namespace h2o
