// Unit tests of `h2o serve`'s pure parts: request parsing and validation (every bad field
// a 4xx with an OpenAI error object), response/chunk JSON, UTF-8 and stop-string
// streaming, chat templates, metrics text, SSE parsing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve/chat_template.h"
#include "serve/metrics.h"
#include "serve/openai_protocol.h"
#include "serve/sse_client.h"
#include "serve/text_stream.h"

namespace h2o::serve {
namespace {

using nlohmann::json;

ProtocolLimits limits() {
  ProtocolLimits l;
  l.model_id = "stories260K-f32";
  l.max_tokens_limit = 512;
  return l;
}

CompletionRequest parse(const std::string& body, bool chat = false) {
  return parse_completion_request(body, chat, limits());
}

// The ApiError a body produces (fails the test if it parses).
ApiError error_of(const std::string& body, bool chat = false) {
  try {
    parse(body, chat);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(ServeProtocol, ParsesCompletionFields) {
  const CompletionRequest r = parse(R"({"model":"stories260K-f32","prompt":"Once","max_tokens":20,"temperature":0,
    "top_p":0.9,"seed":7,"stop":["\n","The end"],"n":1,"stream":true,"stream_options":{"include_usage":true},
    "kv_policy":"h2o","kv_budget":"20%","kv_recent":8,"user":"ignored"})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Once");
  EXPECT_FALSE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "The end"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.kv_policy, "h2o");
  ASSERT_TRUE(r.kv_budget);
  EXPECT_TRUE(r.kv_budget->percent);
  EXPECT_EQ(r.kv_budget->value, 20.0);
  ASSERT_TRUE(r.kv_recent);
  EXPECT_EQ(r.kv_recent->value, 8.0);
}

TEST(ServeProtocol, DefaultsAndAlternativeForms) {
  const CompletionRequest r = parse(R"({"prompt":["Once"],"stop":"x","seed":-1,"temperature":null})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Once");
  EXPECT_FALSE(r.max_tokens);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_FALSE(r.echo);
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r.seed, ~uint64_t{0});
  EXPECT_FALSE(r.stream);
}

TEST(ServeProtocol, ParsesChatMessages) {
  const CompletionRequest r = parse(R"({"messages":[{"role":"developer","content":"Be brief."},
    {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]},
    {"role":"assistant","content":null}],"max_completion_tokens":5})",
                                    true);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.max_tokens, 5);
}

TEST(ServeProtocol, RejectsMalformedAndHostileBodies) {
  for (const std::string body : {"", "{", "{\"prompt\":\"a\"", "[1,2]", "\"text\"", "{\"prompt\":\"a\",}", "nul"}) {
    const ApiError e = error_of(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.code(), "invalid_json") << body;
  }
  // Invalid UTF-8 inside a string, and a lone surrogate escape.
  EXPECT_EQ(error_of("{\"prompt\":\"\xff\xfe\"}").status(), 400);
  EXPECT_EQ(error_of(R"({"prompt":"\udc00"})").status(), 400);
  // Deep nesting is refused before parsing.
  const std::string deep = "{\"prompt\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(error_of(deep).code(), "invalid_json");
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[{{{{","b":[{}]})"), 3);
  EXPECT_EQ(json_nesting_depth(R"({"a":"\"[[["})"), 1);
}

TEST(ServeProtocol, RejectsWrongTypesAndBadValuesNamingTheField) {
  struct Case {
    std::string body, param;
  };
  const std::vector<Case> cases = {
      {R"({"prompt":1})", "prompt"},
      {R"({"prompt":[]})", "prompt"},
      {R"({"prompt":[[]]})", "prompt[0]"},
      {R"({"prompt":[1,-2]})", "prompt"},
      {R"({"prompt":[1,2.5]})", "prompt"},
      {R"({"prompt":[1,"a"]})", "prompt"},
      {R"({"prompt":[1,4294967296]})", "prompt"},
      {R"({"prompt":["a",3]})", "prompt[1]"},
      {R"({"prompt":["a",{"t":1}]})", "prompt[1]"},
      {R"({"prompt":"a","logprobs":21})", "logprobs"},
      {R"({"prompt":"a","logprobs":-1})", "logprobs"},
      {R"({"prompt":"a","logprobs":true})", "logprobs"},
      {R"({"prompt":"a","logprobs":"5"})", "logprobs"},
      {R"({"prompt":"a","echo":1})", "echo"},
      {R"({"prompt":"a","echo":true,"stream":true})", "echo"},
      {R"({"prompt":"a","prefill_chunk":0})", "prefill_chunk"},
      {R"({"prompt":"a","n":0})", "n"},
      {R"({})", "prompt"},
      {R"({"prompt":"a","max_tokens":-1})", "max_tokens"},
      {R"({"prompt":"a","max_tokens":"5"})", "max_tokens"},
      {R"({"prompt":"a","max_tokens":1e300})", "max_tokens"},
      {R"({"prompt":"a","max_tokens":18446744073709551615})", "max_tokens"},
      {R"({"prompt":"a","max_tokens":100000})", "max_tokens"},
      {R"({"prompt":"a","max_tokens":2.5})", "max_tokens"},
      {R"({"prompt":"a","temperature":-0.5})", "temperature"},
      {R"({"prompt":"a","temperature":3})", "temperature"},
      {R"({"prompt":"a","temperature":"hot"})", "temperature"},
      {R"({"prompt":"a","top_p":0})", "top_p"},
      {R"({"prompt":"a","top_p":1.5})", "top_p"},
      {R"({"prompt":"a","seed":"x"})", "seed"},
      {R"({"prompt":"a","seed":1.5})", "seed"},
      {R"({"prompt":"a","stop":5})", "stop"},
      {R"({"prompt":"a","stop":[""]})", "stop"},
      {R"({"prompt":"a","stop":["a","b","c","d","e"]})", "stop"},
      {R"({"prompt":"a","n":2})", "n"},
      {R"({"prompt":"a","best_of":3})", "best_of"},
      {R"({"prompt":"a","stream":"yes"})", "stream"},
      {R"({"prompt":"a","stream_options":{"include_usage":true}})", "stream_options"},
      {R"({"prompt":"a","kv_policy":"lru"})", "kv_policy"},
      {R"({"prompt":"a","kv_policy":7})", "kv_policy"},
      {R"({"prompt":"a","kv_budget":0})", "kv_budget"},
      {R"({"prompt":"a","kv_budget":-4})", "kv_budget"},
      {R"({"prompt":"a","kv_budget":"150%"})", "kv_budget"},
      {R"({"prompt":"a","kv_budget":"lots"})", "kv_budget"},
      {R"({"prompt":"a","kv_budget":12.5})", "kv_budget"},
      {R"({"prompt":"a","kv_recent":[]})", "kv_recent"},
      {R"({"prompt":"a","kv_sinks":-1})", "kv_sinks"},
      {R"({"prompt":"a","kv_type":"q3"})", "kv_type"},
      {R"({"prompt":"a","kv_type":8})", "kv_type"},
      {R"({"prompt":"a","kv_positions":"foo"})", "kv_positions"},
      {R"({"prompt":"a","kv_positions":true})", "kv_positions"},
      {R"({"prompt":"a","kv_positions":["cache"]})", "kv_positions"},
  };
  for (const Case& c : cases) {
    const ApiError e = error_of(c.body);
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body << ": " << e.what();
    EXPECT_EQ(e.type(), "invalid_request_error");
  }
  for (const std::string body :
       {R"({"messages":"hi"})", R"({"messages":[]})", R"({"messages":[{"role":"tool","content":"x"}]})",
        R"({"messages":[{"content":"x"}]})", R"({"messages":[{"role":"user","content":5}]})",
        R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", R"({"messages":[1]})"}) {
    EXPECT_EQ(error_of(body, true).status(), 400) << body;
  }
  // Chat logprobs: a boolean, and top_logprobs only with it.
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", true).param(), "top_logprobs");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})", true).param(),
            "top_logprobs");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"x"}],"logprobs":3})", true).param(), "logprobs");
  // More prompts than the limit.
  json many = {{"prompt", json::array()}};
  for (int i = 0; i < 65; ++i) many["prompt"].push_back("a");
  EXPECT_EQ(error_of(many.dump()).param(), "prompt");
}

TEST(ServeProtocol, ParsesPromptFormsAndLogprobs) {
  // lm-evaluation-harness sends token ids, batched as a list of lists.
  const CompletionRequest ids = parse(R"({"prompt":[1,403,407],"logprobs":1,"echo":true,"max_tokens":0})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_TRUE(ids.prompts[0].is_tokens);
  EXPECT_EQ(ids.prompts[0].tokens, (std::vector<int32_t>{1, 403, 407}));
  EXPECT_EQ(ids.logprobs, 1);
  EXPECT_TRUE(ids.echo);
  EXPECT_EQ(ids.max_tokens, 0);
  const CompletionRequest batch = parse(R"({"prompt":[[1,2],[3],"text"],"logprobs":0,"prefill_chunk":1})");
  ASSERT_EQ(batch.prompts.size(), 3u);
  EXPECT_EQ(batch.prompts[1].tokens, std::vector<int32_t>{3});
  EXPECT_FALSE(batch.prompts[2].is_tokens);
  EXPECT_EQ(batch.prompts[2].text, "text");
  EXPECT_EQ(batch.logprobs, 0);
  EXPECT_EQ(batch.prefill_chunk, 1);
  EXPECT_EQ(parse(R"({"prompt":"a","logprobs":false})").logprobs, -1);
  EXPECT_EQ(parse(R"({"prompt":"a","logprobs":null})").logprobs, -1);
  const std::string chat_body = R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":3})";
  EXPECT_EQ(parse(chat_body, true).logprobs, 3);
  EXPECT_EQ(parse(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", true).logprobs, 0);
  EXPECT_EQ(parse(R"({"messages":[{"role":"user","content":"x"}],"logprobs":false})", true).logprobs, -1);
  // The prefill chunk is a KV setting like the others.
  KvSettings server;
  EXPECT_EQ(merge_kv(server, batch).prefill_chunk, 1);
}

TEST(ServeProtocol, LogprobsShapes) {
  const std::vector<LogprobEntry> entries = {
      {"", std::nullopt, {}, 0},
      {"Once", -0.25, {{"Once", -0.25}, {"One", -1.5}}, 0},
      {" upon", -3.0, {{" a", -0.1}, {"x", -2.0}}, 4},
  };
  const json c = json::parse(dump_json(completion_logprobs_json(entries)));
  EXPECT_EQ(c["tokens"], json({"", "Once", " upon"}));
  EXPECT_TRUE(c["token_logprobs"][0].is_null());
  EXPECT_EQ(c["token_logprobs"][2], -3.0);
  EXPECT_TRUE(c["top_logprobs"][0].is_null());
  EXPECT_EQ(c["top_logprobs"][1], json({{"Once", -0.25}, {"One", -1.5}}));
  EXPECT_EQ(c["text_offset"], json({0, 0, 4}));
  // Alternatives keep their order (most probable first) in the text.
  const std::string text = dump_json(completion_logprobs_json(entries));
  EXPECT_LT(text.find("\" a\":-0.1"), text.find("\"x\":-2.0"));
  const json chat = json::parse(dump_json(chat_logprobs_json(entries)));
  ASSERT_EQ(chat["content"].size(), 2u);  // generated tokens only: the unscored one is left out
  EXPECT_EQ(chat["content"][1]["token"], " upon");
  EXPECT_EQ(chat["content"][1]["bytes"], json({32, 117, 112, 111, 110}));
  EXPECT_EQ(chat["content"][1]["top_logprobs"][0], json({{"token", " a"}, {"logprob", -0.1}, {"bytes", {32, 97}}}));
}

TEST(ServeProtocol, UnknownModelIs404) {
  const ApiError e = error_of(R"({"model":"gpt-4","prompt":"a"})");
  EXPECT_EQ(e.status(), 404);
  EXPECT_EQ(e.code(), "model_not_found");
  EXPECT_EQ(e.param(), "model");
}

TEST(ServeProtocol, ErrorObjectHasOpenAiShape) {
  const json j = error_json(ApiError(400, "max_tokens: bad", "max_tokens", "invalid_value"));
  EXPECT_EQ(j["error"]["message"], "max_tokens: bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_EQ(j["error"]["code"], "invalid_value");
  const json k = error_json("boom", "server_error");
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_TRUE(k["error"]["code"].is_null());
}

TEST(ServeProtocol, MergesKvFieldsOverServerDefaults) {
  KvSettings server;
  server.policy = "h2o";
  server.budget = BudgetSpec::parse("64", "--kv-budget");
  server.recent = BudgetSpec::parse("16", "--kv-recent");
  CompletionRequest r;
  EXPECT_EQ(merge_kv(server, r).describe(), server.describe());
  r.kv_policy = "window";
  KvSettings w = merge_kv(server, r);
  EXPECT_EQ(w.policy, "window");
  EXPECT_EQ(w.budget->value, 64.0);
  EXPECT_FALSE(w.recent);
  r.kv_policy = "full";
  EXPECT_FALSE(merge_kv(server, r).budget);
  r.kv_policy = "h2o";
  r.kv_budget = BudgetSpec::parse("20%", "kv_budget");
  EXPECT_TRUE(merge_kv(server, r).budget->percent);
  // Storage type and positions: the server's unless the request sets them.
  server.type = KvType::F16;
  EXPECT_EQ(merge_kv(server, r).type, KvType::F16);
  EXPECT_EQ(merge_kv(server, r).positions, KvPositions::Absolute);
  const CompletionRequest q =
      parse_completion_request(R"({"prompt":"a","kv_type":"q8","kv_positions":"cache"})", false, limits());
  const KvSettings m = merge_kv(server, q);
  EXPECT_EQ(m.type, KvType::Q8);
  EXPECT_EQ(m.positions, KvPositions::Cache);
}

TEST(ServeProtocol, LibraryErrorsNameRequestFields) {
  const ApiError e = request_error(Error("--kv-budget: policy h2o needs a budget"));
  EXPECT_EQ(e.param(), "kv_budget");
  EXPECT_EQ(std::string(e.what()), "kv_budget: policy h2o needs a budget");
  EXPECT_EQ(request_error(Error("prompt is empty")).param(), "");
}

TEST(ServeProtocol, ResponseAndChunkShapes) {
  KvReport kv{KvResolved{"h2o", 64, 32, 0, 0}, 1000, 2000};
  const ResponseMeta cm{"cmpl-1", 5, "m", false}, chat{"chatcmpl-1", 5, "m", true};
  const auto reparse = [](const ResponseJson& j) { return json::parse(dump_json(j)); };
  const json c = reparse(completion_json(cm, {ChoiceOut{"hello", "length", std::nullopt}}, 4, 3, kv));
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["text"], "hello");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(c["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(c["usage"], json({{"prompt_tokens", 4}, {"completion_tokens", 3}, {"total_tokens", 7}}));
  EXPECT_EQ(c["kv"]["kv_bytes_peak"], 2000);
  EXPECT_EQ(c["kv"]["policy"], "h2o");
  const json two =
      reparse(completion_json(cm, {ChoiceOut{"a", "length", std::nullopt}, ChoiceOut{"b", "stop", {}}}, 4, 3, kv));
  ASSERT_EQ(two["choices"].size(), 2u);
  EXPECT_EQ(two["choices"][1]["index"], 1);
  EXPECT_EQ(two["choices"][1]["text"], "b");
  const json cc = reparse(completion_json(chat, {ChoiceOut{"hi", "stop", std::nullopt}}, 4, 1, kv));
  EXPECT_EQ(cc["object"], "chat.completion");
  EXPECT_EQ(cc["choices"][0]["message"], json({{"role", "assistant"}, {"content", "hi"}}));
  const json first = reparse(stream_chunk_json(chat, 0, "a", true, std::nullopt));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", "a"}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const json last = reparse(stream_chunk_json(chat, 2, "", false, "stop"));
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(last["choices"][0]["index"], 2);
  const json u = reparse(stream_usage_json(cm, 4, 3, kv));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 7);
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // Invalid UTF-8 in generated text is replaced, never thrown.
  EXPECT_EQ(dump_json(json("a\xff")), "\"a\xef\xbf\xbd\"");
  EXPECT_EQ(finish_reason_for("eos"), "stop");
  EXPECT_EQ(finish_reason_for("context"), "length");
}

TEST(ServeTextStream, HoldsSplitUtf8UntilComplete) {
  EXPECT_EQ(utf8_complete_prefix("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix("a\xc3"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xe2\x82"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xe2\x82\xac"), 4u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes go out
  EXPECT_EQ(utf8_complete_prefix("a\xff"), 2u);
  TextStream ts;
  EXPECT_EQ(ts.push("x\xe2"), "x");
  EXPECT_EQ(ts.push("\x82"), "");
  EXPECT_EQ(ts.push("\xac!"), "\xe2\x82\xac!");
  EXPECT_EQ(ts.push("\xf0"), "");
  EXPECT_EQ(ts.finish(), "\xf0");  // the end flushes even an incomplete character
}

TEST(ServeTextStream, CutsAtStopStringsAndHoldsPossiblePrefixes) {
  TextStream ts({"The end", "\n\n"});
  EXPECT_EQ(ts.push("Once upon"), "Once upon");
  EXPECT_EQ(ts.push(" a time. Th"), " a time. ");  // "Th" might start "The end"
  EXPECT_EQ(ts.push("e cat"), "The cat");
  EXPECT_EQ(ts.push(".\n"), ".");
  EXPECT_EQ(ts.push("\nMore"), "");
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(ts.push("ignored"), "");
  EXPECT_EQ(ts.finish(), "");

  TextStream t2({"end"});
  std::string all;
  for (const char* p : {"the e", "n", "d of it"}) all += t2.push(p);
  EXPECT_EQ(all, "the ");
  TextStream t3({"xyz"});
  EXPECT_EQ(t3.push("ax"), "a");
  EXPECT_EQ(t3.finish(), "x");  // a held prefix is sent when the sequence ends
}

TEST(ServeChatTemplate, RendersFormats) {
  const std::vector<ChatMessage> ms = {
      {"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Story?"}};
  EXPECT_EQ(render_chat(ChatFormat::Plain, ms),
            "System: Be kind.\nUser: Hi\nAssistant: Hello\nUser: Story?\nAssistant:");
  EXPECT_EQ(render_chat(ChatFormat::ChatML, {{"user", "Hi"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatFormat::Llama2, ms),
            "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello [INST] Story? [/INST]");
  EXPECT_EQ(render_chat(ChatFormat::Zephyr, {{"user", "Hi"}}), "<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}"), ChatFormat::ChatML);
  EXPECT_EQ(detect_chat_format("{{ '[INST] ' + content }}"), ChatFormat::Llama2);
  EXPECT_FALSE(detect_chat_format("{{ messages }}"));
  EXPECT_EQ(chat_format_from_name("chatml"), ChatFormat::ChatML);
  EXPECT_THROW(chat_format_from_name("jinja"), Error);
}

TEST(ServeMetrics, RendersPrometheusText) {
  Metrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 400);
  m.add_tokens(5, 7);
  m.observe_latency(0.003);
  m.observe_latency(0.2);
  m.observe_ttft(0.0005);
  SchedulerStats s;
  s.queued = 3;
  s.last_batch_rows = 9;
  s.engine.kv_bytes = 12345;
  const std::string t = m.render(s, 2, 0);
  EXPECT_NE(t.find("h2o_requests_total{endpoint=\"/v1/completions\",code=\"200\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("h2o_requests_total{endpoint=\"/v1/completions\",code=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_prompt_tokens_total 5\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_generated_tokens_total 7\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_queue_depth 3\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_batch_size 9\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_kv_bytes 12345\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_requests_in_flight 2\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_request_duration_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_request_duration_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(t.find("h2o_time_to_first_token_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("# TYPE h2o_time_to_first_token_seconds histogram"), std::string::npos);
}

TEST(ServeSse, ParsesEventsAcrossReads) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: {\"a\"").empty());
  auto ev = p.feed(":1}\n\n: ping\n\ndata: [DONE]\n\n");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], "{\"a\":1}");
  EXPECT_EQ(ev[1], "[DONE]");
}

}  // namespace
}  // namespace h2o::serve
