#include "serve/tokenizer_api.h"

#include <fmt/format.h>

namespace h2o::serve {

using nlohmann::json;

namespace {
ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, fmt::format("{}: {}", param, message), param, "invalid_value");
}
}  // namespace

std::string tokenize_response(const Tokenizer& tok, std::string_view body, int context_length,
                              const ProtocolLimits& limits) {
  const json j = parse_json_object(body, limits);
  auto p = j.find("prompt");
  if (p == j.end() || p->is_null()) throw ApiError(400, "prompt: required", "prompt", "missing_field");
  if (!p->is_string()) throw bad("prompt", fmt::format("must be a string, got {}", p->type_name()));
  bool add_special = true;
  if (auto a = j.find("add_special_tokens"); a != j.end() && !a->is_null()) {
    if (!a->is_boolean()) throw bad("add_special_tokens", fmt::format("must be a boolean, got {}", a->type_name()));
    add_special = a->get<bool>();
  }
  EncodeOptions eo{.parse_special = true};
  if (!add_special) eo.add_bos = eo.add_eos = false;
  const std::vector<int32_t> ids = tok.encode(p->get<std::string>(), eo);
  return dump_json(json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", context_length}});
}

std::string detokenize_response(const Tokenizer& tok, std::string_view body, const ProtocolLimits& limits) {
  const json j = parse_json_object(body, limits);
  auto t = j.find("tokens");
  if (t == j.end() || t->is_null()) throw ApiError(400, "tokens: required", "tokens", "missing_field");
  if (!t->is_array()) throw bad("tokens", fmt::format("must be an array of token ids, got {}", t->type_name()));
  const std::vector<int32_t> ids = parse_token_ids(*t, "tokens");
  for (const int32_t id : ids) {
    if (id >= tok.vocab_size())
      throw bad("tokens", fmt::format("token id {} is outside the vocabulary (size {})", id, tok.vocab_size()));
  }
  return dump_json(json{{"prompt", tok.decode(ids)}});
}

std::string tokenizer_info_response(const Tokenizer& tok, int context_length) {
  const auto text_of = [&](std::optional<int32_t> id) { return id ? json(tok.piece(*id)) : json(nullptr); };
  json j = {{"tokenizer_class", tok.describe()},  {"bos_token", text_of(tok.bos_id())},
            {"eos_token", text_of(tok.eos_id())}, {"pad_token", nullptr},
            {"add_bos_token", tok.add_bos()},     {"model_max_length", context_length}};
  if (!tok.vocabulary().chat_template.empty()) j["chat_template"] = tok.vocabulary().chat_template;
  return dump_json(j);
}

}  // namespace h2o::serve
