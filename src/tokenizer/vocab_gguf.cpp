// GGUF tokenizer metadata -> Vocabulary (model-families.md 3.1, 3.2).
#include <fmt/format.h>

#include <limits>

#include "common/check.h"
#include "format/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocabulary.h"

namespace h2o {
namespace {

// SentencePiece stores spaces inside pieces as U+2581 LOWER ONE EIGHTH BLOCK.
constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

std::string replace_space_markers(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.substr(pos, kSpaceMarker.size()) == kSpaceMarker) {
      out.push_back(' ');
      pos += kSpaceMarker.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

const GgufArray& require_array(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  if (!v) fail("{}: missing tokenizer metadata key {}", file.source_name(), key);
  return v->as_array(key);
}

std::optional<int32_t> token_id(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  if (!v) return std::nullopt;
  const int64_t id = v->as_int(key);
  if (id < 0 || id > std::numeric_limits<int32_t>::max())
    fail("{}: {} = {} is not a valid token id", file.source_name(), key, id);
  return static_cast<int32_t>(id);
}

std::optional<bool> flag(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  if (!v) return std::nullopt;
  return v->as_bool(key);
}

TokenKind gguf_kind(const GgufFile& file, size_t id, int64_t type) {
  if (type < 1 || type > 6)
    fail("{}: tokenizer.ggml.token_type[{}] = {} is not a known token type (1-6)", file.source_name(), id, type);
  return static_cast<TokenKind>(type);
}

// Without token types, a SentencePiece file is taken to follow llama2.c's layout.
TokenKind llama2c_layout_kind(size_t id, std::string_view text) {
  if (id == 0) return TokenKind::Unknown;
  if (id == 1 || id == 2) return TokenKind::Control;
  if (parse_byte_token(text)) return TokenKind::Byte;
  return TokenKind::Normal;
}

// "a b" -> {"a", "b"}: split at the first space after the first byte (llama.cpp), so a
// merge of a literal space token (which GGUF spells "Ġ") cannot be ambiguous.
std::pair<std::string, std::string> split_merge(const GgufFile& file, size_t rank, const std::string& merge) {
  const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
  if (space == std::string::npos || space + 1 == merge.size())
    fail("{}: tokenizer.ggml.merges[{}] = '{}' is not two tokens separated by a space", file.source_name(), rank,
         printable_string(merge));
  return {merge.substr(0, space), merge.substr(space + 1)};
}

Vocabulary read(const GgufFile& file) {
  const std::string& src = file.source_name();
  Vocabulary v;
  v.source = src;
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) fail("{}: no tokenizer in the file (missing metadata key tokenizer.ggml.model)", src);
  v.model = *model;
  const bool spm = v.model == "llama";
  if (!spm && v.model != "gpt2") {
    fail("{}: tokenizer model '{}' is not supported (supported: llama = SentencePiece BPE, gpt2 = byte-level BPE)", src,
         printable_string(v.model));
  }

  const GgufArray& tokens = require_array(file, "tokenizer.ggml.tokens");
  const GgufValue* types_value = file.find("tokenizer.ggml.token_type");
  const GgufArray* types = types_value ? &types_value->as_array("tokenizer.ggml.token_type") : nullptr;
  const size_t n = tokens.items.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", src);
  if (n > kMaxVocabTokens) fail("{}: {} tokens is more than the {} supported", src, n, kMaxVocabTokens);
  if (types && types->items.size() != n)
    fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", src, types->items.size(), n);
  const GgufArray* scores = spm ? &require_array(file, "tokenizer.ggml.scores") : nullptr;
  if (scores && scores->items.size() != n)
    fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", src, scores->items.size(), n);

  v.tokens.reserve(n);
  v.kinds.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& raw = tokens.items[i].as_string("tokenizer.ggml.tokens");
    v.tokens.push_back(spm ? replace_space_markers(raw) : raw);
    if (types) {
      v.kinds.push_back(gguf_kind(file, i, types->items[i].as_int("tokenizer.ggml.token_type")));
    } else {
      v.kinds.push_back(spm ? llama2c_layout_kind(i, raw) : TokenKind::Normal);
    }
    if (scores) v.scores.push_back(static_cast<float>(scores->items[i].as_float("tokenizer.ggml.scores")));
  }

  v.bos = token_id(file, "tokenizer.ggml.bos_token_id");
  v.eos = token_id(file, "tokenizer.ggml.eos_token_id");
  v.unk = token_id(file, "tokenizer.ggml.unknown_token_id");
  v.eot = token_id(file, "tokenizer.ggml.eot_token_id");
  v.eom = token_id(file, "tokenizer.ggml.eom_token_id");
  bool default_add_bos = true;
  if (spm) {
    // llama.cpp's SentencePiece defaults; llama2.c models also end a story with BOS.
    v.bos = v.bos.value_or(1);
    v.eos = v.eos.value_or(2);
    v.unk = v.unk.value_or(0);
    v.add_space_prefix = flag(file, "tokenizer.ggml.add_space_prefix").value_or(true);
    v.bos_ends_generation = true;
  } else {
    // A missing pre-tokenizer means llama.cpp's "default" (it warns that quality suffers).
    v.pre = file.get_string("tokenizer.ggml.pre").value_or("default");
    const PreTokenizerName& pre = pre_tokenizer_by_name(v.pre, src);
    default_add_bos = pre.add_bos;
    v.ignore_merges = pre.ignore_merges;
    v.nfc = pre.nfc;
    const GgufArray& merges = require_array(file, "tokenizer.ggml.merges");
    if (merges.items.size() > kMaxMerges)
      fail("{}: {} merges is more than the {} supported", src, merges.items.size(), kMaxMerges);
    v.merges.reserve(merges.items.size());
    for (size_t r = 0; r < merges.items.size(); ++r)
      v.merges.push_back(split_merge(file, r, merges.items[r].as_string("tokenizer.ggml.merges")));
  }
  v.add_bos = flag(file, "tokenizer.ggml.add_bos_token").value_or(default_add_bos);
  v.add_eos = flag(file, "tokenizer.ggml.add_eos_token").value_or(false);
  if (const GgufValue* t = file.find("tokenizer.chat_template"))
    v.chat_template = t->as_string("tokenizer.chat_template");
  add_named_end_of_generation(v, /*gguf_rules=*/true);
  check_vocabulary(v);
  return v;
}

}  // namespace

Vocabulary read_vocabulary_gguf(const GgufFile& file) {
  const std::string& src = file.source_name();
  try {
    return read(file);
  } catch (const Error& e) {
    // GgufValue's accessors name only the key; say which file it was.
    const std::string_view msg = e.what();
    if (msg.starts_with(src + ": ")) throw;
    fail("{}: {}", src, msg);
  }
}

void write_vocabulary_gguf(const Vocabulary& v, GgufWriter& out, size_t pad_to) {
  const bool spm = v.model == "llama";
  out.set_string("tokenizer.ggml.model", v.model);
  std::vector<std::string> tokens;
  tokens.reserve(v.tokens.size());
  for (const std::string& t : v.tokens) {
    if (!spm) {
      tokens.push_back(t);
      continue;
    }
    std::string marked;  // spaces back to U+2581, as SentencePiece stores them
    for (char ch : t) marked += ch == ' ' ? std::string(kSpaceMarker) : std::string(1, ch);
    tokens.push_back(std::move(marked));
  }
  std::vector<int32_t> types;
  types.reserve(v.kinds.size());
  for (TokenKind k : v.kinds) types.push_back(static_cast<int32_t>(k));
  for (size_t i = tokens.size(); i < pad_to; ++i) {
    tokens.push_back(fmt::format("[PAD{}]", i));
    types.push_back(static_cast<int32_t>(TokenKind::Unused));
  }
  out.set_string_array("tokenizer.ggml.tokens", tokens);
  out.set_i32_array("tokenizer.ggml.token_type", types);
  if (spm) {
    out.set_f32_array("tokenizer.ggml.scores", v.scores);
    out.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  } else {
    out.set_string("tokenizer.ggml.pre", v.pre.empty() ? "default" : v.pre);
    std::vector<std::string> merges;
    merges.reserve(v.merges.size());
    for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
    out.set_string_array("tokenizer.ggml.merges", merges);
  }
  const auto id = [&](const char* key, const std::optional<int32_t>& t) {
    if (t) out.set_u32(key, static_cast<uint32_t>(*t));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.eot_token_id", v.eot);
  id("tokenizer.ggml.eom_token_id", v.eom);
  out.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  out.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (!v.chat_template.empty()) out.set_string("tokenizer.chat_template", v.chat_template);
}

}  // namespace h2o
