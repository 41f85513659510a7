// The tokenizer interface: text <-> token ids for every vocabulary kind h2o reads.
//
//   Vocabulary (vocabulary.h)        filled by a format reader: GGUF metadata, llama2.c
//        |                           tokenizer.bin, or a Hugging Face directory
//   make_tokenizer()                 one line per kind (tokenizer.cpp):
//        |                             "llama" -> SpmTokenizer     (spm_tokenizer.*)
//        |                             "gpt2"  -> ByteBpeTokenizer (byte_bpe_tokenizer.*)
//   Tokenizer                        this class: BOS/EOS, special-token splitting, the
//                                    end-of-generation set; the kind encodes plain text
//
// Adding a tokenizer kind: a class derived from Tokenizer (encode_text, decode_piece) in
// its own file, and one line in make_tokenizer().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/special_tokens.h"
#include "tokenizer/vocabulary.h"

namespace h2o {

class GgufFile;

struct EncodeOptions {
  // BOS / EOS around the text; nullopt: what the vocabulary says (add_bos(), add_eos()).
  // Asking for one the vocabulary does not have is an error.
  std::optional<bool> add_bos = std::nullopt;
  std::optional<bool> add_eos = std::nullopt;
  // Text spelling a control token ("<|im_start|>") becomes that token: for prompts built by
  // chat templates, never for user text. User-defined tokens are matched either way.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts = {}) const;
  // llama_tokenize's add_special: true = the BOS/EOS the vocabulary adds (if any), false =
  // none. Special-token text stays text.
  std::vector<int32_t> encode(std::string_view text, bool add_special) const;

  // Bytes that `token` contributes to the text when it follows `prev` (-1: nothing). Control,
  // unknown and unused tokens give nothing unless `special`. A piece may be an incomplete
  // UTF-8 sequence; consecutive pieces concatenate to the exact text.
  virtual std::string decode_piece(int32_t prev, int32_t token, bool special = false) const = 0;
  // Concatenation of decode_piece over `tokens` (the prev of the first is `prev`).
  std::string decode(std::span<const int32_t> tokens, int32_t prev = -1, bool special = false) const;

  // Generation stops at these: EOS, EOT, EOM, tokens named like <|eot_id|>, <|im_end|>,
  // <|endoftext|>, generation_config.json's eos_token_id (model-families.md 3.1, 3.7).
  bool is_end_of_generation(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_; }

  std::optional<int32_t> bos_id() const { return vocab_.bos; }
  std::optional<int32_t> eos_id() const { return vocab_.eos; }
  bool add_bos() const { return vocab_.add_bos; }  // implies bos_id()
  bool add_eos() const { return vocab_.add_eos; }  // implies eos_id()

  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  // Display text of a token: what it decodes to for normal tokens (SentencePiece byte
  // tokens show as <0xXX>), the literal text of control and user-defined ones.
  const std::string& piece(int32_t id) const;
  TokenKind kind(int32_t id) const;
  const Vocabulary& vocabulary() const { return vocab_; }
  // "byte-level BPE (gpt2, pre llama-bpe), 128256 tokens, BOS 128000" and the like.
  std::string describe() const;

 protected:
  explicit Tokenizer(Vocabulary vocab);
  // Appends the tokens of plain text (no special tokens in it). `starts_text`: the text
  // begins the input or follows a special token (SentencePiece's dummy prefix goes there).
  virtual void encode_text(std::string_view text, bool starts_text, std::vector<int32_t>& out) const = 0;
  virtual std::string kind_name() const = 0;
  void check_id(int32_t id) const;  // throws h2o::Error unless 0 <= id < vocab_size()

  Vocabulary vocab_;
  std::vector<std::string> pieces_;  // display text per id; the derived class fills it

 private:
  SpecialTokenMatcher special_;
  std::vector<int32_t> eog_;  // sorted
};

// Builds the tokenizer of `vocab.model`'s kind; throws h2o::Error naming an unknown kind
// and the supported ones, or any defect of the vocabulary.
std::unique_ptr<Tokenizer> make_tokenizer(Vocabulary vocab);

// The tokenizer of a GGUF file (tokenizer.ggml.* keys).
std::unique_ptr<Tokenizer> load_tokenizer_from_gguf(const GgufFile& file);
// llama2.c's tokenizer.bin for a checkpoint with `vocab_size` tokens.
std::unique_ptr<Tokenizer> load_tokenizer_from_llama2c(const std::string& path, int32_t vocab_size);
// A Hugging Face model directory: tokenizer.json, tokenizer_config.json and
// generation_config.json (when present).
std::unique_ptr<Tokenizer> load_tokenizer_from_hf_dir(const std::string& dir);
// The vocabulary of any model h2o reads, without its weights: an HF directory, a GGUF
// file, or a llama2.c checkpoint with its tokenizer.bin (`llama2c_tokenizer`).
std::unique_ptr<Tokenizer> load_tokenizer_for_model(const std::string& model_path,
                                                    const std::string& llama2c_tokenizer = "");

}  // namespace h2o
