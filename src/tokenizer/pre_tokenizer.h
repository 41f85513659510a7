// Pre-tokenizers of byte-level BPE vocabularies: the regex splits that cut text into pieces
// before BPE runs on each piece (model-families.md 3.3). Each kind is a sequence of regexes
// applied in turn to every piece the previous one produced, keeping both the matches and
// the unmatched gaps (HF's Split "Isolated", llama.cpp's unicode_regex_split). The regexes
// are matched by hand-written code (pre_tokenizer.cpp) with the regex engine's semantics:
// leftmost match, alternatives tried in order, greedy quantifiers with backtracking.
//
// Adding a pre-tokenizer: a PreTokenizerKind, its rule list in pre_tokenizer.cpp, and
// one row per GGUF name in the name table (plus its tokenizer.json regex, if it has one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2o {

enum class PreTokenizerKind : uint8_t {
  Default,  // llama.cpp's fallback: punctuation runs, GPT-2, number runs, 3-digit groups
  Gpt2,     // GPT-2 / GPT-NeoX / Pythia / OPT
  Llama3,   // Llama 3: case-insensitive contractions, digits in groups of up to 3
  Qwen2,    // as Llama3 but every digit alone
  Smollm,   // every digit alone, then GPT-2
  Falcon,   // punctuation runs, GPT-2, 3-digit groups
};

// One `tokenizer.ggml.pre` name and what it implies in a GGUF file (llama.cpp's
// llama_vocab::load; the files do not carry these flags themselves).
struct PreTokenizerName {
  std::string_view name;
  PreTokenizerKind kind;
  bool add_bos;        // the default of tokenizer.ggml.add_bos_token
  bool ignore_merges;  // look the whole piece up before merging
  bool nfc;            // the HF tokenizer normalises to NFC first (Qwen2's normalizer)
};

// The row for a GGUF name; throws h2o::Error "<source>: unknown pre-tokenizer '<name>'
// (supported: ...)".
const PreTokenizerName& pre_tokenizer_by_name(std::string_view name, std::string_view source);
// The canonical GGUF name of a kind (the first row of the table for it).
std::string_view pre_tokenizer_name(PreTokenizerKind kind);
// The kind whose regex is `pattern`, as tokenizer.json's Split pre-tokenizer writes it.
std::optional<PreTokenizerKind> pre_tokenizer_by_regex(std::string_view pattern);
// "default, gpt-2, ..." for error messages.
std::string supported_pre_tokenizer_names();

// Byte ranges [first, second) of a text's pieces.
using PieceRanges = std::vector<std::pair<uint32_t, uint32_t>>;

class PreTokenizer {
 public:
  explicit PreTokenizer(PreTokenizerKind kind) : kind_(kind) {}
  PreTokenizerKind kind() const { return kind_; }
  // Appends the pieces of `text` (< 4 GiB) to `out`, in order, covering all of it.
  void split(std::string_view text, PieceRanges& out) const;

 private:
  PreTokenizerKind kind_;
};

}  // namespace h2o
