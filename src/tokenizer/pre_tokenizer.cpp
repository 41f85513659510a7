#include "tokenizer/pre_tokenizer.h"

#include <array>
#include <limits>
#include <span>

#include "common/check.h"
#include "tokenizer/unicode.h"

namespace h2o {
namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kPunct;
using unicode::kWhiteSpace;

// The text as code points with their classes; off[i] is the byte offset of unit i
// (off[n] = text size). Units that are not valid UTF-8 have class 0 and cp >= 0x80, so
// they never equal the ASCII characters the rules test for.
struct Units {
  std::vector<char32_t> cp;
  std::vector<uint8_t> cls;
  std::vector<uint32_t> off;

  explicit Units(std::string_view text) {
    cp.reserve(text.size());
    cls.reserve(text.size());
    off.reserve(text.size() + 1);
    for (size_t pos = 0; pos < text.size();) {
      const unicode::Unit u = unicode::decode(text, pos);
      cp.push_back(u.cp);
      cls.push_back(unicode::classes(u));
      off.push_back(static_cast<uint32_t>(pos));
      pos += u.len;
    }
    off.push_back(static_cast<uint32_t>(text.size()));
  }
  size_t size() const { return cp.size(); }
  bool is(size_t i, uint8_t c) const { return (cls[i] & c) != 0; }
  bool letter(size_t i) const { return is(i, kLetter); }
  bool number(size_t i) const { return is(i, kNumber); }
  bool space(size_t i) const { return is(i, kWhiteSpace); }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const { return !is(i, kLetter | kNumber | kWhiteSpace); }
  bool newline(size_t i) const { return cp[i] == '\r' || cp[i] == '\n'; }
};

// A rule returns the length (in units) of its regex's match starting at `pos` within a
// piece ending at `end`, or 0 for no match. `pos < end`.
using Rule = size_t (*)(const Units&, size_t pos, size_t end);

template <typename Pred>
size_t run_length(size_t pos, size_t end, Pred pred) {
  size_t j = pos;
  while (j < end && pred(j)) ++j;
  return j - pos;
}

char32_t ascii_lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII-case-insensitive (Llama 3's (?i:...)).
size_t contraction(const Units& u, size_t pos, size_t end, bool any_case) {
  if (u.cp[pos] != '\'' || pos + 1 >= end) return 0;
  const auto at = [&](size_t i) { return any_case ? ascii_lower(u.cp[i]) : u.cp[i]; };
  const char32_t a = at(pos + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const char32_t b = at(pos + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// " ?X+" for a class predicate X that never holds for ' ': with the space if X follows it,
// else X+ at pos (the regex engine's backtracking over the optional space).
template <typename Pred>
size_t optional_space_run(const Units& u, size_t pos, size_t end, Pred pred) {
  const size_t start = u.cp[pos] == ' ' && pos + 1 < end ? pos + 1 : pos;
  if (!pred(start)) return 0;
  return start - pos + run_length(start, end, pred);
}

// \s+(?!\S)|\s+ at a whitespace unit: a run that reaches the piece end is taken whole;
// otherwise the last space is left to prefix the next word, unless the run is one space.
size_t whitespace_tail(size_t run, bool at_end) { return at_end || run == 1 ? run : run - 1; }

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t rule_gpt2(const Units& u, size_t pos, size_t end) {
  if (const size_t n = contraction(u, pos, end, false)) return n;
  if (const size_t n = optional_space_run(u, pos, end, [&](size_t i) { return u.letter(i); })) return n;
  if (const size_t n = optional_space_run(u, pos, end, [&](size_t i) { return u.number(i); })) return n;
  if (const size_t n = optional_space_run(u, pos, end, [&](size_t i) { return u.other(i); })) return n;
  if (!u.space(pos)) return 0;
  const size_t run = run_length(pos, end, [&](size_t i) { return u.space(i); });
  return whitespace_tail(run, pos + run == end);
}

// Llama 3 (MaxDigits 3) and Qwen2 (MaxDigits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,MaxDigits}
//   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <size_t MaxDigits>
size_t rule_llama3(const Units& u, size_t pos, size_t end) {
  if (const size_t n = contraction(u, pos, end, true)) return n;
  const auto letter = [&](size_t i) { return u.letter(i); };
  // [^\r\n\p{L}\p{N}]?\p{L}+ : one leading unit of any other kind (space, punctuation...).
  if (!u.newline(pos) && !u.letter(pos) && !u.number(pos) && pos + 1 < end && u.letter(pos + 1))
    return 1 + run_length(pos + 1, end, letter);
  if (u.letter(pos)) return run_length(pos, end, letter);
  if (u.number(pos)) {
    size_t j = pos;
    while (j < end && j - pos < MaxDigits && u.number(j)) ++j;
    return j - pos;
  }
  if (size_t n = optional_space_run(u, pos, end, [&](size_t i) { return u.other(i); })) {
    while (pos + n < end && u.newline(pos + n)) ++n;
    return n;
  }
  if (!u.space(pos)) return 0;
  // \s*[\r\n]+ : up to and including the last newline of the whitespace run.
  size_t run = 0;
  size_t through_newline = 0;
  for (size_t j = pos; j < end && u.space(j); ++j) {
    ++run;
    if (u.newline(j)) through_newline = run;
  }
  if (through_newline > 0) return through_newline;
  return whitespace_tail(run, pos + run == end);
}

// \p{N} (each number alone; HF's Digits with individual_digits).
size_t rule_each_number(const Units& u, size_t pos, size_t) { return u.number(pos) ? 1 : 0; }

// \p{N}+
size_t rule_number_run(const Units& u, size_t pos, size_t end) {
  return run_length(pos, end, [&](size_t i) { return u.number(i); });
}

// [0-9][0-9][0-9]
size_t rule_three_ascii_digits(const Units& u, size_t pos, size_t end) {
  if (pos + 3 > end) return 0;
  for (size_t i = pos; i < pos + 3; ++i) {
    if (u.cp[i] < '0' || u.cp[i] > '9') return 0;
  }
  return 3;
}

// [\p{P}\$\+<=>\^~\|]+ (default) and the same with ` (falcon).
template <bool Backtick>
size_t rule_punctuation(const Units& u, size_t pos, size_t end) {
  return run_length(pos, end, [&](size_t i) {
    const char32_t c = u.cp[i];
    return u.is(i, kPunct) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' ||
           c == '|' || (Backtick && c == '`');
  });
}

std::span<const Rule> rules_of(PreTokenizerKind kind) {
  static constexpr Rule kDefault[] = {rule_punctuation<false>, rule_gpt2, rule_number_run, rule_three_ascii_digits};
  static constexpr Rule kGpt2[] = {rule_gpt2};
  static constexpr Rule kLlama3[] = {rule_llama3<3>};
  static constexpr Rule kQwen2[] = {rule_llama3<1>};
  static constexpr Rule kSmollm[] = {rule_each_number, rule_gpt2};
  static constexpr Rule kFalcon[] = {rule_punctuation<true>, rule_gpt2, rule_three_ascii_digits};
  switch (kind) {
    case PreTokenizerKind::Default:
      return kDefault;
    case PreTokenizerKind::Gpt2:
      return kGpt2;
    case PreTokenizerKind::Llama3:
      return kLlama3;
    case PreTokenizerKind::Qwen2:
      return kQwen2;
    case PreTokenizerKind::Smollm:
      return kSmollm;
    case PreTokenizerKind::Falcon:
      break;
  }
  return kFalcon;
}

// Names llama.cpp's llama_vocab::load maps to each kind, with the flags it sets for them.
// The first row of a kind is its canonical name.
constexpr std::array<PreTokenizerName, 21> kNames = {{
    {"default", PreTokenizerKind::Default, false, false, false},
    {"gpt-2", PreTokenizerKind::Gpt2, false, false, false},
    {"phi-2", PreTokenizerKind::Gpt2, false, false, false},
    {"mpt", PreTokenizerKind::Gpt2, false, false, false},
    {"olmo", PreTokenizerKind::Gpt2, false, false, false},
    {"jina-es", PreTokenizerKind::Gpt2, false, false, false},
    {"jina-de", PreTokenizerKind::Gpt2, false, false, false},
    {"llama-bpe", PreTokenizerKind::Llama3, true, true, false},
    {"llama3", PreTokenizerKind::Llama3, true, true, false},
    {"llama-v3", PreTokenizerKind::Llama3, true, true, false},
    {"falcon3", PreTokenizerKind::Llama3, true, true, false},
    {"pixtral", PreTokenizerKind::Llama3, true, true, false},
    // Qwen's tokenizer.json normalises to NFC; the GGUF file does not say so. (Whether the
    // other vocabularies of this kind do was not checked: they keep llama.cpp's behaviour.)
    {"qwen2", PreTokenizerKind::Qwen2, false, false, true},
    {"deepseek-r1-qwen", PreTokenizerKind::Qwen2, false, false, false},
    {"megrez", PreTokenizerKind::Qwen2, false, false, false},
    {"smollm", PreTokenizerKind::Smollm, false, false, false},
    {"starcoder", PreTokenizerKind::Smollm, false, false, false},
    {"refact", PreTokenizerKind::Smollm, false, false, false},
    {"command-r", PreTokenizerKind::Smollm, false, false, false},
    {"falcon", PreTokenizerKind::Falcon, false, false, false},
    {"codeshell", PreTokenizerKind::Smollm, false, false, false},
}};

// tokenizer.json Split regexes (as the JSON decodes them) and the kind each one is.
struct RegexRow {
  std::string_view pattern;
  PreTokenizerKind kind;
};
constexpr std::array<RegexRow, 4> kRegexes = {{
    {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", PreTokenizerKind::Gpt2},
    {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", PreTokenizerKind::Gpt2},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     PreTokenizerKind::Llama3},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     PreTokenizerKind::Qwen2},
}};

}  // namespace

const PreTokenizerName& pre_tokenizer_by_name(std::string_view name, std::string_view source) {
  for (const PreTokenizerName& row : kNames) {
    if (row.name == name) return row;
  }
  fail("{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre; supported: {})", source, name,
       supported_pre_tokenizer_names());
}

std::string_view pre_tokenizer_name(PreTokenizerKind kind) {
  for (const PreTokenizerName& row : kNames) {
    if (row.kind == kind) return row.name;
  }
  return "default";
}

std::optional<PreTokenizerKind> pre_tokenizer_by_regex(std::string_view pattern) {
  for (const RegexRow& row : kRegexes) {
    if (row.pattern == pattern) return row.kind;
  }
  return std::nullopt;
}

std::string supported_pre_tokenizer_names() {
  std::string out;
  for (const PreTokenizerName& row : kNames) {
    if (!out.empty()) out += ", ";
    out += row.name;
  }
  return out;
}

void PreTokenizer::split(std::string_view text, PieceRanges& out) const {
  if (text.empty()) return;
  if (text.size() > std::numeric_limits<uint32_t>::max()) fail("text of {} bytes is too long to tokenize", text.size());
  const Units u(text);
  // Pieces in unit indices; each rule splits every piece the previous rule produced.
  std::vector<std::pair<size_t, size_t>> pieces{{0, u.size()}};
  std::vector<std::pair<size_t, size_t>> next;
  for (const Rule rule : rules_of(kind_)) {
    next.clear();
    for (const auto& [begin, end] : pieces) {
      size_t gap = begin;
      for (size_t pos = begin; pos < end;) {
        const size_t n = rule(u, pos, end);
        if (n == 0) {
          ++pos;
          continue;
        }
        if (gap < pos) next.emplace_back(gap, pos);
        next.emplace_back(pos, pos + n);
        pos += n;
        gap = pos;
      }
      if (gap < end) next.emplace_back(gap, end);
    }
    pieces.swap(next);
  }
  out.reserve(out.size() + pieces.size());
  for (const auto& [begin, end] : pieces) out.emplace_back(u.off[begin], u.off[end]);
}

}  // namespace h2o
