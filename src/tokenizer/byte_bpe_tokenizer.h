// Byte-level BPE (tokenizer.ggml.model = "gpt2"; HF tokenizer.json with a ByteLevel
// pre-tokenizer): GPT-2, GPT-NeoX/Pythia, OPT, Llama 3, Qwen2, SmolLM2. Plain text is
// NFC-normalised if the vocabulary says so, cut into pieces by the pre-tokenizer, each
// piece's bytes become one symbol per byte (GPT-2's byte map), and symbols merge by merge
// rank, lowest first (model-families.md 3.3-3.5).
#pragma once

#include <array>
#include <string_view>

#include "tokenizer/flat_map.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace h2o {

class PairMerger;

class ByteBpeTokenizer final : public Tokenizer {
 public:
  // Throws h2o::Error for an unknown pre-tokenizer, merges naming unknown tokens, and the
  // like. Loading is linear in the vocabulary and merge list (hash maps, no sorting).
  explicit ByteBpeTokenizer(Vocabulary vocab);

  // Normal tokens give their bytes (GPT-2's byte map reversed; a piece can end inside a
  // UTF-8 sequence), user-defined tokens their text, control tokens nothing unless `special`.
  std::string decode_piece(int32_t prev, int32_t token, bool special = false) const override;

  PreTokenizerKind pre_tokenizer() const { return pre_.kind(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  PreTokenizer pre_;
  FlatMap<uint64_t, Merge, MixHash64> merges_;  // (left id << 32 | right id) -> merge
  std::array<int32_t, 256> byte_token_{};       // the token of each single byte, -1 if none
  // Bytes -> normal token, for ignore_merges: a piece that is a whole token is that token.
  FlatMap<std::string_view, int32_t> whole_;

  void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const override;
  std::string kind_name() const override;
  // Appends the tokens of one pre-tokenized piece.
  void encode_piece(std::string_view bytes, PairMerger& merger, std::vector<int32_t>& symbols,
                    std::vector<int32_t>& out) const;
};

}  // namespace h2o
