#include "tokenizer/vocabulary.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "common/check.h"

namespace h2o {
namespace {

std::optional<uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  return std::nullopt;
}

// Token texts that end a generation whatever the file's ids say (llama.cpp's list in
// llama_vocab::load). `</s>` is not one: Qwen's vocabulary has it as an ordinary token.
constexpr std::array<std::string_view, 8> kEndOfGenerationTexts = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>", "<end_of_turn>", "<EOT>"};

}  // namespace

void add_named_end_of_generation(Vocabulary& v, bool gguf_rules) {
  for (size_t i = 0; i < v.tokens.size() && i < v.kinds.size(); ++i) {
    TokenKind& kind = v.kinds[i];
    if (kind == TokenKind::Unused) continue;
    if (std::find(kEndOfGenerationTexts.begin(), kEndOfGenerationTexts.end(), v.tokens[i]) ==
        kEndOfGenerationTexts.end())
      continue;
    if (gguf_rules && kind == TokenKind::Normal) kind = TokenKind::Control;
    if (kind == TokenKind::Control || gguf_rules) v.extra_eog.push_back(static_cast<int32_t>(i));
  }
}

std::optional<uint8_t> parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  const auto hi = hex_digit(text[3]);
  const auto lo = hex_digit(text[4]);
  if (!hi || !lo) return std::nullopt;
  return static_cast<uint8_t>((*hi << 4) | *lo);
}

void check_vocabulary(const Vocabulary& v) {
  const std::string& src = v.source;
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: empty vocabulary", src);
  if (n > kMaxVocabTokens) fail("{}: {} tokens is more than the {} supported", src, n, kMaxVocabTokens);
  if (v.kinds.size() != n) fail("{}: {} token types for {} tokens", src, v.kinds.size(), n);
  if (!v.scores.empty() && v.scores.size() != n) fail("{}: {} token scores for {} tokens", src, v.scores.size(), n);
  if (v.merges.size() > kMaxMerges)
    fail("{}: {} merges is more than the {} supported", src, v.merges.size(), kMaxMerges);
  const auto check_id = [&](const char* what, const std::optional<int32_t>& id) {
    if (id && (*id < 0 || static_cast<size_t>(*id) >= n))
      fail("{}: {} token id {} is out of range for {} tokens", src, what, *id, n);
  };
  check_id("BOS", v.bos);
  check_id("EOS", v.eos);
  check_id("unknown", v.unk);
  check_id("EOT", v.eot);
  check_id("EOM", v.eom);
  for (const int32_t id : v.extra_eog) check_id("end-of-generation", id);
  for (const auto* list : {&v.lstrip, &v.rstrip}) {
    if (!std::is_sorted(list->begin(), list->end())) fail("{}: strip token lists are not sorted", src);
    for (const int32_t id : *list) check_id("added", id);
  }
  if (v.add_bos && !v.bos) fail("{}: the vocabulary adds a BOS token but has none", src);
  if (v.add_eos && !v.eos) fail("{}: the vocabulary adds an EOS token but has none", src);
}

}  // namespace h2o
