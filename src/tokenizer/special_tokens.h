// Cuts added/special tokens out of text before the tokenizer proper runs on the rest
// (model-families.md 3.6): leftmost-longest exact matching of token texts, as HF's
// AddedVocabulary does. User-defined tokens are always matched (as in HF and llama.cpp:
// GPT-NeoX's whitespace tokens, Qwen's <think>); control and unknown tokens only when the
// caller asks (parse_special: chat templates), so that ordinary text never turns into
// control tokens. Tokens marked lstrip/rstrip swallow the whitespace beside them.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocabulary.h"

namespace h2o {

class SpecialTokenMatcher {
 public:
  struct Fragment {
    uint32_t begin = 0;  // byte range of the text (a token's range includes stripped whitespace)
    uint32_t end = 0;
    int32_t token = -1;  // -1: plain text to tokenize; else the matched token
  };

  explicit SpecialTokenMatcher(const Vocabulary& v);
  // Splits `text` (< 4 GiB) into plain-text fragments and matched tokens, in order.
  void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

 private:
  // A byte trie over the token texts. A node accepts the token whose text ends there: `always`
  // for user-defined tokens, `special` for control and unknown ones.
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> next;  // sorted by byte
    int32_t always = -1;
    int32_t special = -1;
  };
  std::vector<Node> nodes_{1};
  // Bit 1: some user-defined token starts with this byte; bit 2: some control token does.
  std::vector<uint8_t> first_byte_ = std::vector<uint8_t>(256, 0);
  std::vector<int32_t> lstrip_, rstrip_;

  void insert(std::string_view text, int32_t id, bool always);
  // Length of the longest acceptable token text at text[pos], and its id.
  std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos, bool parse_special) const;
};

}  // namespace h2o
