// What a model file says about its tokenizer, in one format-independent description.
// The format readers fill it (GGUF metadata: vocab_gguf.cpp; llama2.c tokenizer.bin:
// vocab_llama2c.cpp; Hugging Face tokenizer.json + tokenizer_config.json +
// generation_config.json: vocab_hf.cpp) and make_tokenizer() builds the tokenizer of its
// `model` kind from it (model-families.md section 3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2o {

// GGUF's tokenizer.ggml.token_type values.
enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// Bounds on what a file may declare, far above any real vocabulary (the largest have
// ~260k tokens) and low enough that a hostile count cannot exhaust memory.
inline constexpr size_t kMaxVocabTokens = size_t{1} << 22;
inline constexpr size_t kMaxMerges = size_t{1} << 22;

struct Vocabulary {
  std::string source;  // file or directory, for error messages
  // Tokenizer algorithm, as GGUF's tokenizer.ggml.model names it: "llama" (SentencePiece
  // BPE with scores) or "gpt2" (byte-level BPE with merges).
  std::string model;
  // gpt2: the pre-tokenizer (tokenizer.ggml.pre; empty = absent, which means "default").
  std::string pre;

  // id -> token text. SentencePiece: spaces as ' ' (GGUF's U+2581 already replaced).
  // Byte-level BPE: normal tokens in GPT-2's byte-mapped form ("Ġthe"), control and
  // user-defined tokens as their literal text ("<|eot_id|>", or three real spaces).
  std::vector<std::string> tokens;
  std::vector<TokenKind> kinds;  // one per token
  std::vector<float> scores;     // SentencePiece merge priority, one per token; empty for gpt2
  // gpt2: merges in rank order (index = rank), each the pair of token texts it joins.
  std::vector<std::pair<std::string, std::string>> merges;

  std::optional<int32_t> bos, eos, unk, eot, eom;
  // More end-of-generation ids: generation_config.json's eos_token_id, tokens named like
  // <|eot_id|> (add_named_end_of_generation).
  std::vector<int32_t> extra_eog;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SentencePiece: the dummy-prefix space
  // gpt2: NFC before pre-tokenizing (Qwen2), and whole-piece lookup before merging (Llama 3).
  bool nfc = false;
  bool ignore_merges = false;
  // Added tokens that swallow whitespace on their left / right when matched in text
  // (tokenizer.json's lstrip / rstrip); sorted ids.
  std::vector<int32_t> lstrip, rstrip;
  // llama2.c models end a story with BOS: generation also stops there.
  bool bos_ends_generation = false;

  std::string chat_template;  // Jinja text (tokenizer.chat_template / tokenizer_config.json)
};

// Adds to extra_eog the tokens whose text is one of llama.cpp's end-of-generation names
// (<|eot_id|>, <|im_end|>, <|endoftext|>, ...). GGUF files: any token so named counts, and
// one typed as normal becomes a control token, as llama.cpp does ("control-looking token
// ... will be overridden"). HF files mark their special tokens themselves: only control
// tokens count there (OPT's vocabulary has an ordinary token spelled <|endoftext|>).
void add_named_end_of_generation(Vocabulary& v, bool gguf_rules);

// The byte a SentencePiece byte-fallback token "<0xXX>" stands for.
std::optional<uint8_t> parse_byte_token(std::string_view text);

// Checks sizes, id ranges and flags that every tokenizer kind relies on; throws h2o::Error
// "<source>: <problem>".
void check_vocabulary(const Vocabulary& v);

// ---- Format readers. Each throws h2o::Error "<file>: <problem>" on any defect. ----

class GgufFile;

// tokenizer.ggml.* metadata (model-families.md 3.1).
Vocabulary read_vocabulary_gguf(const GgufFile& file);
// The same keys written (h2o convert): read_vocabulary_gguf of the result gives `v` back.
// With `pad_to` above the token count (a model whose embedding has spare rows, as
// GPT-NeoX's 50304 for 50257 tokens), the list is padded with "[PAD<id>]" tokens of kind
// Unused as llama.cpp's converter does, since llama.cpp requires one token per row.
class GgufWriter;
void write_vocabulary_gguf(const Vocabulary& v, GgufWriter& out, size_t pad_to = 0);
// llama2.c tokenizer.bin: int32 max_token_length, then per token {f32 score, i32 len, bytes}.
Vocabulary read_vocabulary_llama2c(const std::string& path, int32_t vocab_size);
// A Hugging Face directory: tokenizer.json, then tokenizer_config.json and
// generation_config.json when present, then chat_template.jinja (model-families.md 3.8).
Vocabulary read_vocabulary_hf_dir(const std::string& dir);
// The same from file contents (tests and fuzzing); `source` names them in errors.
Vocabulary parse_tokenizer_json(std::string_view json, const std::string& source);
void apply_tokenizer_config(Vocabulary& v, std::string_view json, const std::string& source);
void apply_generation_config(Vocabulary& v, std::string_view json, const std::string& source);
// The chat template of an HF directory (tokenizer_config.json's chat_template, or
// chat_template.jinja), without reading the vocabulary; nullopt when there is none.
std::optional<std::string> read_hf_chat_template(const std::string& dir);

}  // namespace h2o
