// Hugging Face tokenizer files -> Vocabulary (model-families.md 3.8): tokenizer.json
// (byte-level BPE model, added tokens, normalizer, pre-tokenizer, post-processor),
// tokenizer_config.json (bos/eos tokens, add_bos_token, chat_template) and
// generation_config.json (eos_token_id: the stop set). Every file is read with a size cap
// and every field is type-checked before use: one-line errors, never a crash.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "format/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocabulary.h"

namespace h2o {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Real tokenizer.json files are up to ~35 MB (Gemma 3); configs are kilobytes.
constexpr size_t kMaxTokenizerJsonBytes = size_t{256} << 20;
constexpr size_t kMaxConfigBytes = size_t{16} << 20;

std::optional<std::string> read_capped(const fs::path& path, size_t cap) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  if (!fs::is_regular_file(path, ec)) fail("{}: not a regular file", path.string());
  const auto size = fs::file_size(path, ec);
  if (ec) fail("{}: cannot read the file size: {}", path.string(), ec.message());
  if (size > cap) fail("{}: {} bytes is more than the {} accepted for this file", path.string(), size, cap);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) fail("{}: read error", path.string());
  return data;
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    json j = json::parse(text.begin(), text.end());
    if (!j.is_object()) fail("{}: expected a JSON object at the top level", source);
    return j;
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", source, e.what());
  }
}

// Typed access to JSON fields with one-line errors naming the field.
class Fields {
 public:
  explicit Fields(const std::string& source) : source_(source) {}

  // The member, or nullptr if absent or null.
  const json* find(const json& obj, const char* key) const {
    if (!obj.is_object()) return nullptr;
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  // The member, or null if absent or `obj` is not an object.
  const json& get(const json& obj, const char* key) const {
    static const json null;
    const json* v = find(obj, key);
    return v ? *v : null;
  }
  const json& object(const json& obj, const char* key, const std::string& where) const {
    const json* v = find(obj, key);
    if (!v || !v->is_object()) fail("{}: {}.{} must be an object", source_, where, key);
    return *v;
  }
  std::string string(const json& v, const std::string& what) const {
    if (!v.is_string()) fail("{}: {} must be a string", source_, what);
    return v.get<std::string>();
  }
  std::optional<std::string> opt_string(const json& obj, const char* key, const std::string& where) const {
    const json* v = find(obj, key);
    if (!v) return std::nullopt;
    return string(*v, where + "." + key);
  }
  std::optional<bool> opt_bool(const json& obj, const char* key, const std::string& where) const {
    const json* v = find(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) fail("{}: {}.{} must be true or false", source_, where, key);
    return v->get<bool>();
  }
  int32_t id(const json& v, const std::string& what) const {
    if (!v.is_number_integer()) fail("{}: {} must be an integer token id", source_, what);
    const auto x = v.get<int64_t>();
    if (x < 0 || static_cast<uint64_t>(x) >= kMaxVocabTokens)
      fail("{}: {} = {} is not a token id (0..{})", source_, what, x, kMaxVocabTokens - 1);
    return static_cast<int32_t>(x);
  }
  const std::string& source() const { return source_; }

 private:
  const std::string& source_;
};

// The kind of a ByteLevel pre-tokenizer, checking the options h2o implements.
void check_byte_level(const Fields& f, const json& p, bool regex_expected, const std::string& where) {
  if (f.opt_bool(p, "add_prefix_space", where).value_or(true))
    fail("{}: {} has add_prefix_space = true, which is not supported", f.source(), where);
  if (f.opt_bool(p, "use_regex", where).value_or(true) != regex_expected)
    fail("{}: {}.use_regex must be {} here", f.source(), where, regex_expected);
}

constexpr const char* kSupportedPreTokenizers =
    "ByteLevel; Sequence[Split(regex of gpt-2, llama-bpe or qwen2), ByteLevel]; Sequence[Digits, ByteLevel]";

PreTokenizerKind pre_tokenizer_kind(const Fields& f, const json& p) {
  const std::string type = f.opt_string(p, "type", "pre_tokenizer").value_or("");
  if (type == "ByteLevel") {
    check_byte_level(f, p, true, "pre_tokenizer");
    return PreTokenizerKind::Gpt2;
  }
  if (type == "Sequence") {
    const json* list = f.find(p, "pretokenizers");
    if (list && list->is_array() && list->size() == 2) {
      const json& first = (*list)[0];
      const json& second = (*list)[1];
      const std::string t0 = f.opt_string(first, "type", "pre_tokenizer.pretokenizers[0]").value_or("");
      const std::string t1 = f.opt_string(second, "type", "pre_tokenizer.pretokenizers[1]").value_or("");
      if (t0 == "Split" && t1 == "ByteLevel") {
        check_byte_level(f, second, false, "pre_tokenizer.pretokenizers[1]");
        const std::string behavior = f.opt_string(first, "behavior", "Split").value_or("");
        if (behavior != "Isolated" || f.opt_bool(first, "invert", "Split").value_or(false))
          fail("{}: Split pre-tokenizer with behavior '{}' is not supported (only Isolated)", f.source(), behavior);
        const json* pattern = f.find(first, "pattern");
        const std::optional<std::string> regex =
            pattern ? f.opt_string(*pattern, "Regex", "Split.pattern") : std::nullopt;
        if (!regex) fail("{}: Split pre-tokenizer without a Regex pattern is not supported", f.source());
        if (const auto kind = pre_tokenizer_by_regex(*regex)) return *kind;
        fail("{}: Split regex '{}' is not one h2o implements (supported: the gpt-2, llama-bpe and qwen2 regexes)",
             f.source(), printable_string(*regex));
      }
      if (t0 == "Digits" && t1 == "ByteLevel") {
        if (!f.opt_bool(first, "individual_digits", "Digits").value_or(false))
          fail("{}: Digits pre-tokenizer without individual_digits is not supported", f.source());
        check_byte_level(f, second, true, "pre_tokenizer.pretokenizers[1]");
        return PreTokenizerKind::Smollm;
      }
    }
  }
  fail("{}: pre_tokenizer of type '{}' (or these options) is not supported (supported: {})", f.source(),
       printable_string(type), kSupportedPreTokenizers);
}

bool nfc_normalizer(const Fields& f, const json* n) {
  if (!n) return false;
  const std::string type = f.opt_string(*n, "type", "normalizer").value_or("");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    const json* list = f.find(*n, "normalizers");
    if (list && list->is_array()) {
      bool nfc = false;
      for (const json& item : *list) {
        if (f.opt_string(item, "type", "normalizer").value_or("") != "NFC") {
          nfc = false;
          break;
        }
        nfc = true;
      }
      if (nfc) return true;
    }
  }
  fail("{}: normalizer '{}' is not supported (supported: none, NFC)", f.source(), printable_string(type));
}

// TemplateProcessing's `single`: a SpecialToken first means BOS, last means EOS.
void apply_template(const Fields& f, const json& tp, Vocabulary& v) {
  const json* single = f.find(tp, "single");
  if (!single || !single->is_array()) fail("{}: TemplateProcessing without a 'single' list", f.source());
  const json* specials = f.find(tp, "special_tokens");
  const auto special_id = [&](const json& item) -> std::optional<int32_t> {
    const json* st = f.find(item, "SpecialToken");
    if (!st) return std::nullopt;
    const std::string name = f.string(f.get(*st, "id"), "TemplateProcessing SpecialToken id");
    const json* entry = specials ? f.find(*specials, name.c_str()) : nullptr;
    const json* ids = entry ? f.find(*entry, "ids") : nullptr;
    if (!ids || !ids->is_array() || ids->size() != 1)
      fail("{}: TemplateProcessing special token '{}' must map to exactly one id", f.source(), printable_string(name));
    return f.id((*ids)[0], "TemplateProcessing special token id");
  };
  if (single->empty()) return;
  if (const auto bos = special_id(single->front())) {
    v.bos = *bos;
    v.add_bos = true;
  }
  if (single->size() > 1) {
    if (const auto eos = special_id(single->back())) {
      v.eos = *eos;
      v.add_eos = true;
    }
  }
}

void apply_post_processor(const Fields& f, const json* p, Vocabulary& v) {
  if (!p) return;
  const std::string type = f.opt_string(*p, "type", "post_processor").value_or("");
  if (type == "ByteLevel") return;  // adjusts offsets only
  if (type == "TemplateProcessing") return apply_template(f, *p, v);
  if (type == "Sequence") {
    const json* list = f.find(*p, "processors");
    if (!list || !list->is_array()) fail("{}: post_processor Sequence without 'processors'", f.source());
    for (const json& item : *list) apply_post_processor(f, &item, v);
    return;
  }
  fail("{}: post_processor '{}' is not supported (supported: ByteLevel, TemplateProcessing, Sequence of them)",
       f.source(), printable_string(type));
}

std::pair<std::string, std::string> parse_merge(const Fields& f, const json& m, size_t rank) {
  if (m.is_array()) {
    if (m.size() != 2) fail("{}: model.merges[{}] must be a pair of tokens", f.source(), rank);
    return {f.string(m[0], "a merge part"), f.string(m[1], "a merge part")};
  }
  // Legacy form "a b": exactly two parts separated by one space (HF's serialization.rs).
  const std::string s = f.string(m, fmt::format("model.merges[{}]", rank));
  const size_t space = s.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == s.size() || s.find(' ', space + 1) != std::string::npos)
    fail("{}: model.merges[{}] = '{}' is not two tokens separated by a space", f.source(), rank, printable_string(s));
  return {s.substr(0, space), s.substr(space + 1)};
}

// A token named in tokenizer_config.json: a string or {"content": ...}; its id by text.
std::optional<int32_t> config_token(const Fields& f, const json& cfg, const char* key, const Vocabulary& v) {
  const json* t = f.find(cfg, key);
  if (!t) return std::nullopt;
  const std::string text =
      t->is_object() ? f.string(f.get(*t, "content"), std::string(key) + ".content") : f.string(*t, key);
  // Added tokens (literal text) first, then the vocabulary's byte-mapped spellings.
  for (const bool normal : {false, true}) {
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if ((v.kinds[i] == TokenKind::Normal) == normal && v.tokens[i] == text) return static_cast<int32_t>(i);
    }
  }
  fail("{}: {} '{}' is not a token of the vocabulary", f.source(), key, printable_string(text));
}

std::optional<std::string> chat_template_field(const Fields& f, const json& cfg) {
  const json* t = f.find(cfg, "chat_template");
  if (!t) return std::nullopt;
  if (t->is_string()) return t->get<std::string>();
  // Named templates: [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
  if (t->is_array()) {
    for (const json& item : *t) {
      if (f.opt_string(item, "name", "chat_template[]").value_or("") == "default")
        return f.string(f.get(item, "template"), "chat_template[].template");
    }
  }
  fail("{}: chat_template must be a string or a list with a 'default' entry", f.source());
}

std::optional<std::string> chat_template_of_dir(const fs::path& dir, const std::optional<json>& config) {
  const std::string cfg_name = (dir / "tokenizer_config.json").string();
  if (config) {
    if (auto t = chat_template_field(Fields(cfg_name), *config)) return t;
  }
  if (auto jinja = read_capped(dir / "chat_template.jinja", kMaxConfigBytes)) return jinja;
  const fs::path json_path = dir / "chat_template.json";
  if (auto text = read_capped(json_path, kMaxConfigBytes)) {
    const std::string name = json_path.string();
    return chat_template_field(Fields(name), parse_json(*text, name));
  }
  return std::nullopt;
}

fs::path require_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  return fs::path(dir);
}

Vocabulary read_tokenizer_json(std::string_view text, const std::string& source) {
  const Fields f(source);
  const json j = parse_json(text, source);
  const json& model = f.object(j, "model", "tokenizer");
  const std::string type = f.opt_string(model, "type", "model").value_or("");
  if (type != "BPE") fail("{}: model type '{}' is not supported (supported: BPE)", source, printable_string(type));
  if (f.opt_bool(model, "byte_fallback", "model").value_or(false))
    fail("{}: a SentencePiece-style BPE (byte_fallback) tokenizer.json is not supported; use the GGUF file", source);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!f.opt_string(model, key, "model").value_or("").empty())
      fail("{}: model.{} is not supported (byte-level BPE has none)", source, key);
  }
  if (const json* d = f.find(j, "decoder"); d && f.opt_string(*d, "type", "decoder").value_or("") != "ByteLevel")
    fail("{}: decoder '{}' is not supported (supported: ByteLevel)", source,
         printable_string(f.opt_string(*d, "type", "decoder").value_or("")));

  Vocabulary v;
  v.source = source;
  v.model = "gpt2";
  const json& vocab = f.object(model, "vocab", "model");
  if (vocab.size() > kMaxVocabTokens)
    fail("{}: {} tokens is more than the {} supported", source, vocab.size(), kMaxVocabTokens);
  const json* added = f.find(j, "added_tokens");
  if (added && !added->is_array()) fail("{}: added_tokens must be a list", source);
  if (added && added->size() > kMaxVocabTokens) fail("{}: too many added tokens ({})", source, added->size());

  // The id -> text map is the union of model.vocab and added_tokens; ids need not be
  // contiguous (holes become unused tokens) and must not repeat within model.vocab.
  size_t n = 0;
  for (const auto& [token, id] : vocab.items()) n = std::max(n, static_cast<size_t>(f.id(id, "model.vocab id")) + 1);
  if (added) {
    for (const json& a : *added) n = std::max(n, static_cast<size_t>(f.id(f.get(a, "id"), "added_tokens id")) + 1);
  }
  if (n == 0) fail("{}: empty vocabulary", source);
  v.tokens.assign(n, std::string());
  v.kinds.assign(n, TokenKind::Unused);
  for (const auto& [token, id_json] : vocab.items()) {
    const auto id = static_cast<size_t>(f.id(id_json, "model.vocab id"));
    if (v.kinds[id] != TokenKind::Unused)
      fail("{}: model.vocab gives id {} to both '{}' and '{}'", source, id, printable_string(v.tokens[id]),
           printable_string(token));
    if (token.empty()) fail("{}: model.vocab has an empty token (id {})", source, id);
    v.tokens[id] = token;
    v.kinds[id] = TokenKind::Normal;
  }
  if (added) {
    for (const json& a : *added) {
      const auto id = static_cast<size_t>(f.id(f.get(a, "id"), "added_tokens id"));
      const std::string content = f.string(f.get(a, "content"), "added_tokens content");
      if (content.empty()) fail("{}: added token {} has empty content", source, id);
      const bool special = f.opt_bool(a, "special", "added_tokens").value_or(false);
      v.tokens[id] = content;
      v.kinds[id] = special ? TokenKind::Control : TokenKind::UserDefined;
      if (f.opt_bool(a, "lstrip", "added_tokens").value_or(false)) v.lstrip.push_back(static_cast<int32_t>(id));
      if (f.opt_bool(a, "rstrip", "added_tokens").value_or(false)) v.rstrip.push_back(static_cast<int32_t>(id));
    }
  }
  for (auto* list : {&v.lstrip, &v.rstrip}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }

  const json* merges = f.find(model, "merges");
  if (!merges || !merges->is_array()) fail("{}: model.merges must be a list", source);
  if (merges->size() > kMaxMerges)
    fail("{}: {} merges is more than the {} supported", source, merges->size(), kMaxMerges);
  v.merges.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    const json& m = (*merges)[r];
    if (m.is_string() && m.get_ref<const std::string&>().starts_with("#version")) continue;
    v.merges.push_back(parse_merge(f, m, r));
  }
  v.ignore_merges = f.opt_bool(model, "ignore_merges", "model").value_or(false);
  if (const auto unk = f.opt_string(model, "unk_token", "model")) {
    for (size_t i = 0; i < n; ++i) {
      if (v.tokens[i] == *unk) {
        v.unk = static_cast<int32_t>(i);
        break;
      }
    }
    if (!v.unk) fail("{}: model.unk_token '{}' is not a token", source, printable_string(*unk));
  }

  v.nfc = nfc_normalizer(f, f.find(j, "normalizer"));
  const json* pre = f.find(j, "pre_tokenizer");
  if (!pre) fail("{}: no pre_tokenizer (a byte-level BPE needs one; supported: {})", source, kSupportedPreTokenizers);
  v.pre = std::string(pre_tokenizer_name(pre_tokenizer_kind(f, *pre)));
  apply_post_processor(f, f.find(j, "post_processor"), v);
  add_named_end_of_generation(v, /*gguf_rules=*/false);
  check_vocabulary(v);
  return v;
}

void read_tokenizer_config(Vocabulary& v, std::string_view text, const std::string& source) {
  const Fields f(source);
  const json cfg = parse_json(text, source);
  // The post-processor decides which token is prepended; the config names the others.
  if (const auto bos = config_token(f, cfg, "bos_token", v); bos && !v.add_bos) v.bos = bos;
  if (const auto eos = config_token(f, cfg, "eos_token", v)) v.eos = eos;
  if (const auto unk = config_token(f, cfg, "unk_token", v); unk && !v.unk) v.unk = unk;
  // Explicit switches override the post-processor (as llama.cpp's converter reads them).
  if (const auto add = f.opt_bool(cfg, "add_bos_token", "tokenizer_config")) v.add_bos = *add;
  if (const auto add = f.opt_bool(cfg, "add_eos_token", "tokenizer_config")) v.add_eos = *add;
  if (auto t = chat_template_field(f, cfg)) v.chat_template = std::move(*t);
  check_vocabulary(v);
}

void read_generation_config(Vocabulary& v, std::string_view text, const std::string& source) {
  const Fields f(source);
  const json cfg = parse_json(text, source);
  // Ids this file names must be tokens of the vocabulary read before it.
  const auto token = [&](const json& j, const char* what) {
    const int32_t id = f.id(j, what);
    if (static_cast<size_t>(id) >= v.tokens.size())
      fail("{}: {} {} is out of range for {} tokens", source, what, id, v.tokens.size());
    return id;
  };
  if (const json* e = f.find(cfg, "eos_token_id")) {
    if (e->is_array()) {
      if (e->size() > 1024) fail("{}: eos_token_id lists {} ids", source, e->size());
      for (const json& id : *e) v.extra_eog.push_back(token(id, "eos_token_id"));
    } else {
      v.extra_eog.push_back(token(*e, "eos_token_id"));
    }
    if (!v.eos && !v.extra_eog.empty()) v.eos = v.extra_eog.front();
  }
  if (const json* b = f.find(cfg, "bos_token_id"); b && !v.bos) v.bos = token(*b, "bos_token_id");
  check_vocabulary(v);
}

}  // namespace

Vocabulary parse_tokenizer_json(std::string_view text, const std::string& source) {
  try {
    return read_tokenizer_json(text, source);
  } catch (const json::exception& e) {  // a field of an unexpected type that no check caught
    fail("{}: {}", source, e.what());
  }
}

void apply_tokenizer_config(Vocabulary& v, std::string_view text, const std::string& source) {
  try {
    read_tokenizer_config(v, text, source);
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
}

void apply_generation_config(Vocabulary& v, std::string_view text, const std::string& source) {
  try {
    read_generation_config(v, text, source);
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
}

Vocabulary read_vocabulary_hf_dir(const std::string& dir) {
  const fs::path root = require_dir(dir);
  const fs::path tj = root / "tokenizer.json";
  const auto text = read_capped(tj, kMaxTokenizerJsonBytes);
  if (!text) {
    std::error_code ec;
    if (fs::exists(root / "tokenizer.model", ec))
      fail("{}: has a SentencePiece tokenizer.model but no tokenizer.json; convert the model to GGUF", dir);
    fail("{}: no tokenizer.json (vocab.json + merges.txt alone are not supported)", dir);
  }
  Vocabulary v = parse_tokenizer_json(*text, tj.string());
  const fs::path cfg = root / "tokenizer_config.json";
  if (const auto c = read_capped(cfg, kMaxConfigBytes)) apply_tokenizer_config(v, *c, cfg.string());
  const fs::path gen = root / "generation_config.json";
  if (const auto g = read_capped(gen, kMaxConfigBytes)) apply_generation_config(v, *g, gen.string());
  if (v.chat_template.empty()) v.chat_template = chat_template_of_dir(root, std::nullopt).value_or("");
  v.source = dir;
  check_vocabulary(v);
  return v;
}

std::optional<std::string> read_hf_chat_template(const std::string& dir) {
  const fs::path root = require_dir(dir);
  const fs::path cfg = root / "tokenizer_config.json";
  std::optional<json> config;
  if (const auto c = read_capped(cfg, kMaxConfigBytes)) config = parse_json(*c, cfg.string());
  return chat_template_of_dir(root, config);
}

}  // namespace h2o
