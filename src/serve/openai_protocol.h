// The OpenAI-compatible wire format of `h2o serve`: request bodies of /v1/completions and
// /v1/chat/completions parsed and checked into a CompletionRequest, and the JSON of
// responses, stream chunks and errors. Pure functions (no sockets, no engine), so every
// rule here is unit-tested on its own.
//
// Request body (OpenAI's fields this server implements, then its extensions):
//   model?, prompt (string | [string] | [token id] | [[token id]]: one choice per prompt)
//   or messages ([{role, content}]), max_tokens? (chat also max_completion_tokens),
//   temperature?, top_p?, seed?, stop? (string | [string]), n? (1 only), stream?,
//   stream_options? {include_usage}, completions: logprobs? (0..20), echo?; chat:
//   logprobs? (bool), top_logprobs? (0..20); extensions: top_k?, ignore_eos?, kv_policy?,
//   kv_budget? (N | "N" | "P%"), kv_recent?, kv_sinks?, kv_type? ("f32" | "f16" | "q8"),
//   kv_positions? ("absolute" | "cache"), prefill_chunk?.
// Unknown fields are ignored (as OpenAI does for fields it has retired); fields whose
// non-default values this server cannot honour (n > 1, best_of > 1, echo with stream)
// are rejected rather than silently ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kv/kv_config.h"

namespace h2o::serve {

// A request the server refuses: HTTP status plus OpenAI's error object fields.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string code = {},
           std::string type = "invalid_request_error");
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_, code_, type_;
};

// {"error":{"message","type","param","code"}}; empty param/code become null.
nlohmann::json error_json(std::string_view message, std::string_view type, std::string_view param = {},
                          std::string_view code = {});
nlohmann::json error_json(const ApiError& e);

struct ProtocolLimits {
  std::string model_id;          // the only model name accepted in "model"
  int max_tokens_limit = 4096;   // largest max_tokens a request may ask for
  int default_max_tokens = 16;   // /v1/completions without max_tokens (OpenAI's default)
  int max_stop = 4;              // stop strings per request
  size_t max_stop_length = 256;  // bytes per stop string
  int max_json_depth = 32;       // nesting of arrays/objects in a body
  size_t max_messages = 512;     // chat messages per request
  size_t max_prompts = 64;       // prompts (choices) per completions request
};

struct ChatMessage {
  std::string role;  // system, user or assistant ("developer" is read as system)
  std::string content;
};

// One prompt of a completions request: text (tokenized by the server, BOS added as the
// vocabulary does) or token ids (used exactly as given: no BOS is added).
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct CompletionRequest {
  bool chat = false;
  std::vector<PromptInput> prompts;   // /v1/completions: one choice each
  std::vector<ChatMessage> messages;  // /v1/chat/completions
  std::optional<int> max_tokens;      // absent: the endpoint's default
  float temperature = 1.0f;           // OpenAI's default; 0 = greedy
  float top_p = 1.0f;
  int top_k = 0;
  std::optional<uint64_t> seed;  // absent: the server picks one
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool ignore_eos = false;
  // Logprobs: -1 none, else the alternatives per token (completions `logprobs`, chat
  // `top_logprobs` under `logprobs: true`). echo: the prompt is returned before the
  // completion, with its tokens' logprobs when logprobs >= 0 (completions only).
  int logprobs = -1;
  bool echo = false;
  // Per-request KV settings; each absent field falls back to the server's flag.
  std::optional<std::string> kv_policy;
  std::optional<BudgetSpec> kv_budget, kv_recent;
  std::optional<int> kv_sinks;
  std::optional<KvType> kv_type;
  std::optional<KvPositions> kv_positions;
  std::optional<int> prefill_chunk;
};

// Deepest nesting of arrays/objects in `text` outside strings, found without recursion so
// that hostile input cannot exhaust the stack before the JSON parser sees it.
int json_nesting_depth(std::string_view text);

// A request body parsed as a JSON object (nesting bounded first). Throws ApiError 400
// ("invalid_json") naming the problem.
nlohmann::json parse_json_object(std::string_view body, const ProtocolLimits& limits);

// Token ids from a JSON array (a prompt, /detokenize's tokens): integers in [0, 2^31).
// Throws ApiError 400 naming `param`; the vocabulary's range is checked by the caller.
std::vector<int32_t> parse_token_ids(const nlohmann::json& array, const std::string& param);

// Parses and checks a request body. Throws ApiError (400, or 404 for an unknown model).
CompletionRequest parse_completion_request(std::string_view body, bool chat, const ProtocolLimits& limits);

// The server's KV settings with the request's fields laid over them. Throws ApiError for
// a kv_budget under policy full (the library would ignore it; a client should know).
KvSettings merge_kv(const KvSettings& server, const CompletionRequest& req);

// Turns an h2o::Error from KV or sampling validation ("--kv-budget: ...") into a 400
// naming the request field ("kv_budget: ...", param "kv_budget").
ApiError request_error(const Error& e);

// Per-request KV report: resolved settings and the bytes of the sequence's cache (from the
// engine's events).
struct KvReport {
  KvResolved resolved;
  size_t bytes = 0;       // at the end of the request
  size_t bytes_peak = 0;  // largest during the request
};

struct ResponseMeta {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  bool chat = false;
};

// Responses keep their keys in the order written (OpenAI's order; top_logprobs most
// probable first).
using ResponseJson = nlohmann::ordered_json;

ResponseJson usage_json(int prompt_tokens, int completion_tokens);
ResponseJson kv_json(const KvReport& kv);

// One token's logprob as reported: its text, its logprob (none for a sequence's first
// token, which nothing predicts), the most probable alternatives (most probable first) and
// where its text starts in the choice's text (in Unicode code points, as OpenAI counts).
struct LogprobEntry {
  std::string token;
  std::optional<double> logprob;
  std::vector<std::pair<std::string, double>> top;
  size_t text_offset = 0;
};
// Completions: {tokens, token_logprobs, top_logprobs ({text: logprob} or null), text_offset}.
ResponseJson completion_logprobs_json(const std::vector<LogprobEntry>& entries);
// Chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
ResponseJson chat_logprobs_json(const std::vector<LogprobEntry>& entries);

// One choice of a whole response.
struct ChoiceOut {
  std::string text;
  std::string finish_reason;
  std::optional<ResponseJson> logprobs;  // null when not requested
};

// A whole (non-streamed) response.
ResponseJson completion_json(const ResponseMeta& meta, const std::vector<ChoiceOut>& choices, int prompt_tokens,
                             int completion_tokens, const KvReport& kv);

// One stream chunk for choice `index`. Chat: the first chunk carries delta.role; the last
// one (finish_reason set) has an empty delta. Completions: choices[0].text.
ResponseJson stream_chunk_json(const ResponseMeta& meta, int index, std::string_view text, bool first,
                               std::optional<std::string_view> finish_reason,
                               std::optional<ResponseJson> logprobs = std::nullopt);
// The chunk after the last one when stream_options.include_usage: empty choices, usage.
ResponseJson stream_usage_json(const ResponseMeta& meta, int prompt_tokens, int completion_tokens, const KvReport& kv);

// JSON text with invalid UTF-8 replaced by U+FFFD (generated pieces may be invalid).
std::string dump_json(const nlohmann::json& j);
std::string dump_json(const ResponseJson& j);
// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);
std::string sse_event(const ResponseJson& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// OpenAI's finish_reason for an engine stop_reason: eos -> stop, length/context -> length.
std::string finish_reason_for(std::string_view stop_reason);

}  // namespace h2o::serve
