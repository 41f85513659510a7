#include "serve/openai_protocol.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "common/printable.h"
#include "sampling/logprobs.h"

namespace h2o::serve {

using nlohmann::json;

ApiError::ApiError(int status, const std::string& message, std::string param, std::string code, std::string type)
    : std::runtime_error(message),
      status_(status),
      param_(std::move(param)),
      code_(std::move(code)),
      type_(std::move(type)) {}

json error_json(std::string_view message, std::string_view type, std::string_view param, std::string_view code) {
  // Messages quote request fields (a role, a policy name): control characters in them are
  // escaped here, so a client that prints the message prints no terminal escapes.
  json e = {{"message", terminal_safe(message)}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

json error_json(const ApiError& e) { return error_json(e.what(), e.type(), e.param(), e.code()); }

int json_nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

namespace {

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, fmt::format("{}: {}", param, message), param, "invalid_value");
}

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;  // null means "not given", as in OpenAI's API
  return &*it;
}

std::optional<int64_t> get_int(const json& body, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) throw bad(key, fmt::format("must be at most {}, got {}", hi, u));
    if (static_cast<int64_t>(u) < lo) throw bad(key, fmt::format("must be at least {}, got {}", lo, u));
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) throw bad(key, fmt::format("must be an integer, got {}", v->type_name()));
  const int64_t i = v->get<int64_t>();
  if (i < lo) throw bad(key, fmt::format("must be at least {}, got {}", lo, i));
  if (i > hi) throw bad(key, fmt::format("must be at most {}, got {}", hi, i));
  return i;
}

std::optional<double> get_number(const json& body, const char* key, double lo, double hi, bool lo_open = false) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad(key, fmt::format("must be a number, got {}", v->type_name()));
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d <= lo))
    throw bad(key, fmt::format("must be in {}{}, {}], got {}", lo_open ? "(" : "[", lo, hi, d));
  return d;
}

std::optional<bool> get_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad(key, fmt::format("must be a boolean, got {}", v->type_name()));
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad(key, fmt::format("must be a string, got {}", v->type_name()));
  return v->get<std::string>();
}

// kv_budget / kv_recent: a positive integer, or a string "N" / "P%".
std::optional<BudgetSpec> get_budget(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  std::string text;
  if (v->is_number_integer() || v->is_number_unsigned()) {
    text = v->dump();
  } else if (v->is_string()) {
    text = v->get<std::string>();
  } else {
    throw bad(key, fmt::format("must be a token count or a percentage string such as \"20%\", got {}", v->type_name()));
  }
  try {
    return BudgetSpec::parse(text, key);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), key, "invalid_value");
  }
}

}  // namespace

std::vector<int32_t> parse_token_ids(const json& array, const std::string& param) {
  std::vector<int32_t> ids;
  ids.reserve(array.size());
  for (const json& t : array) {
    if (!t.is_number_integer() && !t.is_number_unsigned())
      throw bad(param, fmt::format("token ids must be integers, got {}", t.type_name()));
    const int64_t v = t.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(t.get<uint64_t>(), INT64_MAX))
                                             : t.get<int64_t>();
    if (v < 0 || v > std::numeric_limits<int32_t>::max())
      throw bad(param, fmt::format("token id {} is not a valid token id", v));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

namespace {

// A token-id prompt: a non-empty array of integers (range-checked against the vocabulary
// when the request is submitted).
std::vector<int32_t> token_prompt(const json& a, const std::string& where) {
  if (a.empty()) throw bad(where, "a token prompt must not be empty");
  return parse_token_ids(a, where);
}

// prompt: "text" | ["text", ...] | [id, ...] | [[id, ...], ...].
std::vector<PromptInput> parse_prompts(const json& body, const ProtocolLimits& lim) {
  const json* p = field(body, "prompt");
  if (!p) throw ApiError(400, "prompt: required", "prompt", "missing_field");
  if (p->is_string()) return {PromptInput{p->get<std::string>(), {}, false}};
  if (!p->is_array())
    throw bad("prompt", fmt::format("must be a string, an array of strings or of token ids, got {}", p->type_name()));
  if (p->empty()) throw bad("prompt", "must contain at least one prompt");
  if ((*p)[0].is_number()) return {PromptInput{{}, token_prompt(*p, "prompt"), true}};
  if (p->size() > lim.max_prompts)
    throw bad("prompt", fmt::format("at most {} prompts per request, got {}", lim.max_prompts, p->size()));
  std::vector<PromptInput> out;
  for (size_t i = 0; i < p->size(); ++i) {
    const json& e = (*p)[i];
    const std::string where = fmt::format("prompt[{}]", i);
    if (e.is_string()) {
      out.push_back(PromptInput{e.get<std::string>(), {}, false});
    } else if (e.is_array()) {
      out.push_back(PromptInput{{}, token_prompt(e, where), true});
    } else {
      throw bad(where, fmt::format("must be a string or an array of token ids, got {}", e.type_name()));
    }
  }
  return out;
}

std::string message_content(const json& m, size_t i) {
  const std::string where = fmt::format("messages[{}].content", i);
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    throw bad(where, fmt::format("must be a string or an array of text parts, got {}", it->type_name()));
  // Content parts: only {"type":"text","text":...} (no images or audio here).
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string())
      throw bad(where, "only text parts {\"type\":\"text\",\"text\":...} are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& body, const ProtocolLimits& lim) {
  const json* ms = field(body, "messages");
  if (!ms) throw ApiError(400, "messages: required", "messages", "missing_field");
  if (!ms->is_array()) throw bad("messages", fmt::format("must be an array, got {}", ms->type_name()));
  if (ms->empty()) throw bad("messages", "must contain at least one message");
  if (ms->size() > lim.max_messages) throw bad("messages", fmt::format("at most {} messages", lim.max_messages));
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    if (!m.is_object()) throw bad(fmt::format("messages[{}]", i), "must be an object with role and content");
    auto r = m.find("role");
    if (r == m.end() || !r->is_string()) throw bad(fmt::format("messages[{}].role", i), "must be a string");
    std::string role = r->get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw bad(fmt::format("messages[{}].role", i), fmt::format("must be system, user or assistant, got '{}'", role));
    out.push_back({role, message_content(m, i)});
  }
  return out;
}

std::vector<std::string> parse_stop(const json& body, const ProtocolLimits& lim) {
  const json* s = field(body, "stop");
  if (!s) return {};
  std::vector<std::string> out;
  if (s->is_string()) {
    out.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (const json& e : *s) {
      if (!e.is_string()) throw bad("stop", "must be a string or an array of strings");
      out.push_back(e.get<std::string>());
    }
  } else {
    throw bad("stop", fmt::format("must be a string or an array of strings, got {}", s->type_name()));
  }
  if (out.size() > static_cast<size_t>(lim.max_stop))
    throw bad("stop", fmt::format("at most {} stop strings", lim.max_stop));
  for (const std::string& t : out) {
    if (t.empty()) throw bad("stop", "stop strings must not be empty");
    if (t.size() > lim.max_stop_length)
      throw bad("stop", fmt::format("stop strings are limited to {} bytes", lim.max_stop_length));
  }
  return out;
}

void reject_unsupported(const json& body, bool chat) {
  if (auto n = get_int(body, "n", 1, std::numeric_limits<int>::max()); n && *n != 1)
    throw ApiError(400, fmt::format("n: only n=1 is supported, got {}", *n), "n", "unsupported_value");
  if (!chat) {
    if (auto b = get_int(body, "best_of", 1, std::numeric_limits<int>::max()); b && *b != 1)
      throw ApiError(400, fmt::format("best_of: only best_of=1 is supported, got {}", *b), "best_of",
                     "unsupported_value");
  }
}

// The alternatives per token, -1 for no logprobs. Completions: logprobs N (0 reports each
// token's own logprob with no alternatives; false and null: none). Chat: logprobs
// true/false, top_logprobs N (only with logprobs true).
int parse_logprobs(const json& body, bool chat) {
  if (chat) {
    const bool on = get_bool(body, "logprobs").value_or(false);
    const auto top = get_int(body, "top_logprobs", 0, kMaxTopLogprobs);
    if (top && !on) throw bad("top_logprobs", "needs logprobs: true");
    return on ? static_cast<int>(top.value_or(0)) : -1;
  }
  const json* lp = field(body, "logprobs");
  if (!lp) return -1;
  if (lp->is_boolean()) {
    if (!lp->get<bool>()) return -1;
    throw bad("logprobs", fmt::format("must be an integer in [0, {}] (the alternatives per token)", kMaxTopLogprobs));
  }
  return static_cast<int>(*get_int(body, "logprobs", 0, kMaxTopLogprobs));
}

}  // namespace

json parse_json_object(std::string_view body, const ProtocolLimits& lim) {
  if (body.empty()) throw ApiError(400, "request body is empty: expected a JSON object", "", "invalid_json");
  if (json_nesting_depth(body) > lim.max_json_depth)
    throw ApiError(400, fmt::format("request body nests arrays/objects deeper than {} levels", lim.max_json_depth), "",
                   "invalid_json");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    // nlohmann's message names the byte offset and what was expected; invalid UTF-8 lands here.
    throw ApiError(400, fmt::format("malformed JSON body: {}", e.what()), "", "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(400, fmt::format("request body must be a JSON object, got {}", j.type_name()), "", "invalid_json");
  return j;
}

CompletionRequest parse_completion_request(std::string_view body, bool chat, const ProtocolLimits& lim) {
  const json j = parse_json_object(body, lim);
  CompletionRequest r;
  r.chat = chat;
  if (auto model = get_string(j, "model"); model && *model != lim.model_id)
    throw ApiError(404, fmt::format("The model '{}' does not exist (this server serves '{}')", *model, lim.model_id),
                   "model", "model_not_found");
  reject_unsupported(j, chat);
  if (chat) {
    r.messages = parse_messages(j, lim);
  } else {
    r.prompts = parse_prompts(j, lim);
  }
  r.logprobs = parse_logprobs(j, chat);
  const char* max_key = chat && field(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto mt = get_int(j, max_key, 0, std::numeric_limits<int64_t>::max())) {
    if (*mt > lim.max_tokens_limit)
      throw ApiError(400, fmt::format("{}: at most {} on this server, got {}", max_key, lim.max_tokens_limit, *mt),
                     max_key, "invalid_value");
    r.max_tokens = static_cast<int>(*mt);
  }
  if (auto t = get_number(j, "temperature", 0.0, 2.0)) r.temperature = static_cast<float>(*t);
  if (auto p = get_number(j, "top_p", 0.0, 1.0, true)) r.top_p = static_cast<float>(*p);
  if (auto k = get_int(j, "top_k", 0, std::numeric_limits<int>::max())) r.top_k = static_cast<int>(*k);
  if (const json* s = field(j, "seed")) {
    if (s->is_number_unsigned()) {
      r.seed = s->get<uint64_t>();
    } else if (s->is_number_integer()) {
      r.seed = static_cast<uint64_t>(s->get<int64_t>());  // OpenAI's seeds are signed 64-bit
    } else {
      throw bad("seed", fmt::format("must be an integer, got {}", s->type_name()));
    }
  }
  r.stop = parse_stop(j, lim);
  r.stream = get_bool(j, "stream").value_or(false);
  if (const json* so = field(j, "stream_options")) {
    if (!r.stream) throw bad("stream_options", "only allowed when stream is true");
    if (!so->is_object()) throw bad("stream_options", fmt::format("must be an object, got {}", so->type_name()));
    r.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  if (!chat) {
    r.echo = get_bool(j, "echo").value_or(false);
    if (r.echo && r.stream)
      throw ApiError(400, "echo: not supported with stream (send stream: false)", "echo", "unsupported_value");
  }
  r.ignore_eos = get_bool(j, "ignore_eos").value_or(false);
  if (auto c = get_int(j, "prefill_chunk", 1, 1 << 20)) r.prefill_chunk = static_cast<int>(*c);
  r.kv_policy = get_string(j, "kv_policy");
  if (r.kv_policy) {
    const auto& names = kv_policy_names();
    if (std::find(names.begin(), names.end(), *r.kv_policy) == names.end())
      throw bad("kv_policy", fmt::format("unknown policy '{}' (choose from {})", *r.kv_policy, fmt::join(names, ", ")));
  }
  r.kv_budget = get_budget(j, "kv_budget");
  r.kv_recent = get_budget(j, "kv_recent");
  if (auto s = get_int(j, "kv_sinks", 0, 1 << 20)) r.kv_sinks = static_cast<int>(*s);
  try {
    if (auto t = get_string(j, "kv_type")) r.kv_type = parse_kv_type(*t, "kv_type");
    if (auto p = get_string(j, "kv_positions")) r.kv_positions = parse_kv_positions(*p, "kv_positions");
  } catch (const Error& e) {
    const std::string msg = e.what();
    throw ApiError(400, msg, msg.substr(0, msg.find(':')), "invalid_value");
  }
  return r;
}

KvSettings merge_kv(const KvSettings& server, const CompletionRequest& req) {
  KvSettings s = server;
  if (req.kv_policy && *req.kv_policy != server.policy) {
    // A different policy does not inherit the server's budget split for another policy's
    // needs, except the budget itself (so {"kv_policy":"window"} reuses --kv-budget).
    s.policy = *req.kv_policy;
    if (s.policy == "full") s.budget.reset();
    s.recent.reset();
  }
  if (req.kv_budget && s.policy == "full")
    throw ApiError(400, "kv_budget: not used by policy full (set kv_policy too)", "kv_budget", "invalid_value");
  if (req.kv_budget) s.budget = req.kv_budget;
  if (req.kv_recent) s.recent = req.kv_recent;
  if (req.kv_sinks) s.sinks = *req.kv_sinks;
  if (req.kv_type) s.type = *req.kv_type;
  if (req.kv_positions) s.positions = *req.kv_positions;
  if (req.prefill_chunk) s.prefill_chunk = *req.prefill_chunk;
  return s;
}

ApiError request_error(const Error& e) {
  std::string msg = e.what();
  std::string param;
  // Library messages name CLI flags; requests name fields: "--kv-budget: x" -> "kv_budget: x".
  if (msg.rfind("--", 0) == 0) {
    const size_t colon = msg.find(':');
    std::string flag = msg.substr(2, colon == std::string::npos ? std::string::npos : colon - 2);
    for (char& c : flag) c = c == '-' ? '_' : c;
    if (flag == "temp") flag = "temperature";
    param = flag;
    msg = flag + (colon == std::string::npos ? "" : msg.substr(colon));
  }
  return ApiError(400, msg, param, "invalid_value");
}

ResponseJson usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

ResponseJson kv_json(const KvReport& kv) {
  return {{"policy", kv.resolved.policy},
          {"budget", kv.resolved.budget},
          {"recent", kv.resolved.recent},
          {"sinks", kv.resolved.sinks},
          {"type", kv_type_name(kv.resolved.type)},
          {"positions", kv_positions_name(kv.resolved.positions)},
          {"kv_bytes", kv.bytes},
          {"kv_bytes_peak", kv.bytes_peak}};
}

ResponseJson completion_logprobs_json(const std::vector<LogprobEntry>& entries) {
  ResponseJson tokens = ResponseJson::array(), lps = ResponseJson::array(), tops = ResponseJson::array(),
               offsets = ResponseJson::array();
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token);
    offsets.push_back(e.text_offset);
    if (!e.logprob) {
      lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    lps.push_back(*e.logprob);
    // Two alternatives with the same text (possible in byte-level vocabularies) share a
    // key; the more probable one, written first, is kept.
    ResponseJson top = ResponseJson::object();
    for (const auto& [text, lp] : e.top) {
      if (!top.contains(text)) top[text] = lp;
    }
    tops.push_back(std::move(top));
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

namespace {
ResponseJson utf8_bytes(std::string_view s) {
  ResponseJson b = ResponseJson::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

ResponseJson chat_logprobs_json(const std::vector<LogprobEntry>& entries) {
  ResponseJson content = ResponseJson::array();
  for (const LogprobEntry& e : entries) {
    if (!e.logprob) continue;  // chat reports generated tokens only
    ResponseJson top = ResponseJson::array();
    for (const auto& [text, lp] : e.top) top.push_back({{"token", text}, {"logprob", lp}, {"bytes", utf8_bytes(text)}});
    content.push_back(
        {{"token", e.token}, {"logprob", *e.logprob}, {"bytes", utf8_bytes(e.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

namespace {
ResponseJson envelope(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}
}  // namespace

ResponseJson completion_json(const ResponseMeta& meta, const std::vector<ChoiceOut>& choices, int prompt_tokens,
                             int completion_tokens, const KvReport& kv) {
  ResponseJson j = envelope(meta, meta.chat ? "chat.completion" : "text_completion");
  ResponseJson list = ResponseJson::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOut& c = choices[i];
    ResponseJson choice = {{"index", i}};
    if (meta.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = c.logprobs ? *c.logprobs : ResponseJson(nullptr);
    choice["finish_reason"] = c.finish_reason;
    list.push_back(std::move(choice));
  }
  j["choices"] = std::move(list);
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  j["kv"] = kv_json(kv);
  return j;
}

ResponseJson stream_chunk_json(const ResponseMeta& meta, int index, std::string_view text, bool first,
                               std::optional<std::string_view> finish_reason, std::optional<ResponseJson> logprobs) {
  ResponseJson j = envelope(meta, meta.chat ? "chat.completion.chunk" : "text_completion");
  ResponseJson choice = {{"index", index}};
  if (meta.chat) {
    ResponseJson delta = ResponseJson::object();
    if (first) delta["role"] = "assistant";
    if (!finish_reason || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs ? std::move(*logprobs) : ResponseJson(nullptr);
  choice["finish_reason"] = finish_reason ? ResponseJson(*finish_reason) : ResponseJson(nullptr);
  j["choices"] = ResponseJson::array({choice});
  return j;
}

ResponseJson stream_usage_json(const ResponseMeta& meta, int prompt_tokens, int completion_tokens, const KvReport& kv) {
  ResponseJson j = envelope(meta, meta.chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = ResponseJson::array();
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  j["kv"] = kv_json(kv);
  return j;
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string dump_json(const ResponseJson& j) { return j.dump(-1, ' ', false, ResponseJson::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }
std::string sse_event(const ResponseJson& j) { return "data: " + dump_json(j) + "\n\n"; }

std::string finish_reason_for(std::string_view stop_reason) {
  if (stop_reason == "eos" || stop_reason == "stop") return "stop";
  if (stop_reason == "length" || stop_reason == "context") return "length";
  return std::string(stop_reason);
}

}  // namespace h2o::serve
