// libFuzzer target for OpenAI request bodies (serve/openai_protocol): any bytes, as a
// /v1/completions or a /v1/chat/completions body, must parse into a request or throw
// ApiError with a 4xx status -- never another exception, a crash or deep recursion. An
// accepted request must respect the limits, and its KV fields must merge with the server's
// or be refused as a 400 naming a field. Prompts (text, token ids, batches), logprobs and
// echo are held to their documented ranges.
#include "common/error.h"
#include "serve/openai_protocol.h"

namespace {

void check(const h2o::serve::CompletionRequest& r, const h2o::serve::ProtocolLimits& lim) {
  if (r.stop.size() > static_cast<size_t>(lim.max_stop)) __builtin_trap();
  for (const std::string& s : r.stop) {
    if (s.empty() || s.size() > lim.max_stop_length) __builtin_trap();
  }
  if (r.max_tokens && (*r.max_tokens < 0 || *r.max_tokens > lim.max_tokens_limit)) __builtin_trap();
  if (r.chat && (r.messages.empty() || r.messages.size() > lim.max_messages)) __builtin_trap();
  if (!(r.temperature >= 0) || !(r.top_p >= 0 && r.top_p <= 1) || r.top_k < 0) __builtin_trap();
  if (!r.chat && (r.prompts.empty() || r.prompts.size() > lim.max_prompts)) __builtin_trap();
  for (const h2o::serve::PromptInput& p : r.prompts) {
    if (p.is_tokens && p.tokens.empty()) __builtin_trap();
    for (int32_t t : p.tokens) {
      if (t < 0) __builtin_trap();
    }
  }
  if (r.logprobs < -1 || r.logprobs > 20 || (r.echo && r.stream) || (r.echo && r.chat)) __builtin_trap();
  if (r.prefill_chunk && *r.prefill_chunk < 1) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  h2o::serve::ProtocolLimits lim;
  lim.model_id = "stories260K";
  lim.max_tokens_limit = 512;
  h2o::KvSettings server;
  server.policy = "h2o";
  server.budget = h2o::BudgetSpec::parse("64", "--kv-budget");
  (void)h2o::serve::json_nesting_depth(body);
  for (const bool chat : {false, true}) {
    try {
      const h2o::serve::CompletionRequest r = h2o::serve::parse_completion_request(body, chat, lim);
      check(r, lim);
      const h2o::KvSettings kv = h2o::serve::merge_kv(server, r);
      try {
        (void)h2o::resolve_kv(kv, 100);
      } catch (const h2o::Error& e) {
        const h2o::serve::ApiError api = h2o::serve::request_error(e);
        if (api.status() != 400) __builtin_trap();
      }
    } catch (const h2o::serve::ApiError& e) {
      if (e.status() < 400 || e.status() > 499) __builtin_trap();
      (void)h2o::serve::dump_json(h2o::serve::error_json(e));
    }
  }
  return 0;
}
