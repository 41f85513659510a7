// Logprobs through `h2o serve` against the real binaries: echoed prompt logprobs equal
// minus `h2o perplexity --per-token` on the same text and KV settings for every policy;
// alternatives sorted, holding the sampled token; text_offset indexing the text; logprobs
// in SSE chunks and in the chat format; token-id and batched prompts; the tokenizer
// endpoints lm-evaluation-harness's remote tokenizer calls.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "integration/run_cli.h"
#include "integration/serve_harness.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

using nlohmann::json;

// The response as written (ordered_json keeps the keys' order: top_logprobs most probable first).
nlohmann::ordered_json post_ordered(ServeProcess& s, const std::string& path, const json& body, int want_status = 200) {
  auto c = s.client();
  auto r = c.Post(path, body.dump(), "application/json");
  if (!r) {
    ADD_FAILURE() << "no response to " << path;
    return {};
  }
  EXPECT_EQ(r->status, want_status) << r->body;
  return nlohmann::ordered_json::parse(r->body);
}

json post(ServeProcess& s, const std::string& path, const json& body, int want_status = 200) {
  return json::parse(post_ordered(s, path, body, want_status).dump());
}

// The data lines of an SSE body, parsed (without [DONE]).
std::vector<json> sse_chunks(const std::string& body) {
  std::vector<json> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const std::string data = body.substr(at + 6, end - at - 6);
    if (data != "[DONE]") out.push_back(json::parse(data));
    at = end;
  }
  return out;
}

std::string story_text(size_t words) {
  std::ifstream in(shared_path("data/tinystories-valid.txt"));
  std::string w, text;
  for (size_t i = 0; i < words && in >> w; ++i) text += (i ? " " : "") + w;
  return text;
}

TEST(ServeLogprobs, EchoedPromptLogprobsEqualPerplexityPerTokenForEveryPolicy) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const std::string text = story_text(70);
  char path[] = "/tmp/h2o_logprobs_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  for (const std::string policy : {"full", "window", "sink", "h2o", "tova", "random"}) {
    SCOPED_TRACE(policy);
    json req = {{"prompt", text}, {"echo", true},        {"max_tokens", 0},
                {"logprobs", 1},  {"kv_policy", policy}, {"prefill_chunk", 3}};
    std::vector<std::string> args = {"perplexity",
                                     "-m",
                                     model_path("stories260K-f32.gguf"),
                                     "-f",
                                     path,
                                     "--per-token",
                                     "--json",
                                     "--kv-policy",
                                     policy,
                                     "--prefill-chunk",
                                     "3",
                                     "-t",
                                     "1"};
    if (policy != "full") {
      req["kv_budget"] = "40%";
      args.insert(args.end(), {"--kv-budget", "40%"});
    }
    const nlohmann::ordered_json r = post_ordered(s, "/v1/completions", req);
    const json& lp = r["choices"][0]["logprobs"];
    const size_t n = lp["tokens"].size();
    ASSERT_GT(n, 60u);
    EXPECT_EQ(r["usage"]["prompt_tokens"], n);
    EXPECT_EQ(r["usage"]["completion_tokens"], 0);
    EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(r["choices"][0]["text"], text);  // echo: the prompt, then nothing
    // One window of exactly the prompt (BOS + text), so percentages resolve alike.
    args.insert(args.end(), {"--ctx", std::to_string(n)});
    const CliResult p = run_cli(args);
    ASSERT_EQ(p.exit_code, 0) << p.err;
    const json pj = json::parse(p.out);
    ASSERT_EQ(pj["nll"].size(), n - 1);
    EXPECT_EQ(r["kv"]["budget"].dump(), pj["budget"].dump());  // ordered_json vs json: compared as text
    EXPECT_TRUE(lp["token_logprobs"][0].is_null());
    EXPECT_TRUE(lp["top_logprobs"][0].is_null());
    for (size_t t = 1; t < n; ++t)
      EXPECT_NEAR(lp["token_logprobs"][t].get<double>(), -pj["nll"][t - 1].get<double>(), 1e-4) << "token " << t;
  }
  std::remove(path);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLogprobs, AlternativesAreSortedHoldTheSampledTokenAndOffsetsIndexTheText) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  for (const double temperature : {0.0, 1.0}) {
    SCOPED_TRACE(temperature);
    const nlohmann::ordered_json r = post_ordered(s, "/v1/completions",
                                                  {{"prompt", "Once upon a time"},
                                                   {"max_tokens", 12},
                                                   {"logprobs", 5},
                                                   {"temperature", temperature},
                                                   {"seed", 3},
                                                   {"ignore_eos", true}});
    const nlohmann::ordered_json& c = r["choices"][0];
    const nlohmann::ordered_json& lp = c["logprobs"];
    const std::string text = c["text"];
    ASSERT_EQ(lp["tokens"].size(), 12u);
    std::string joined;
    for (size_t i = 0; i < 12; ++i) {
      const std::string tok = lp["tokens"][i];
      const double chosen = lp["token_logprobs"][i];
      EXPECT_LE(chosen, 0.0);
      EXPECT_EQ(lp["text_offset"][i], joined.size());  // ASCII: code points are bytes
      joined += tok;
      // Most probable first (the order of the JSON text), five of them.
      const nlohmann::ordered_json& top = lp["top_logprobs"][i];
      const std::string top_text = top.dump();
      EXPECT_EQ(top.size(), 5u);
      std::vector<double> values;
      for (const auto& item : top.items()) values.push_back(item.value().get<double>());
      EXPECT_TRUE(std::is_sorted(values.rbegin(), values.rend())) << top_text;
      if (chosen >= values.back()) {
        ASSERT_TRUE(top.contains(tok)) << tok << " " << top_text;
        EXPECT_DOUBLE_EQ(top[tok].get<double>(), chosen);
      }
      if (temperature == 0.0) EXPECT_DOUBLE_EQ(chosen, values.front());  // greedy takes the first
    }
    EXPECT_EQ(joined, text);
  }
  // Bad values are 400s naming the field.
  EXPECT_EQ(post(s, "/v1/completions", {{"prompt", "a"}, {"logprobs", 21}}, 400)["error"]["param"], "logprobs");
  EXPECT_EQ(post(s, "/v1/completions", {{"prompt", "a"}, {"echo", true}, {"stream", true}}, 400)["error"]["param"],
            "echo");
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLogprobs, StreamedAndChatLogprobs) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  auto c = s.client();
  // Completions stream: every chunk carries its tokens' logprobs; together they spell the text.
  auto r = c.Post("/v1/completions",
                  json{{"prompt", "Once upon a time"},
                       {"max_tokens", 10},
                       {"logprobs", 2},
                       {"temperature", 0},
                       {"stream", true},
                       {"ignore_eos", true}}
                      .dump(),
                  "application/json");
  ASSERT_TRUE(r && r->status == 200);
  std::string text, from_tokens;
  size_t n_tokens = 0;
  for (const json& chunk : sse_chunks(r->body)) {
    const json& ch = chunk["choices"][0];
    text += ch["text"].get<std::string>();
    if (ch["logprobs"].is_null()) continue;
    for (size_t i = 0; i < ch["logprobs"]["tokens"].size(); ++i) {
      from_tokens += ch["logprobs"]["tokens"][i].get<std::string>();
      EXPECT_EQ(ch["logprobs"]["top_logprobs"][i].size(), 2u);
      ++n_tokens;
    }
  }
  EXPECT_EQ(n_tokens, 10u);
  EXPECT_EQ(from_tokens, text);
  // The same text and logprobs as the whole response.
  const json whole = post(
      s, "/v1/completions",
      {{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"logprobs", 2}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(whole["choices"][0]["text"], text);

  // Chat: logprobs true + top_logprobs N, whole and streamed.
  const json chat_body = {{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
                          {"max_tokens", 6},
                          {"logprobs", true},
                          {"top_logprobs", 3},
                          {"temperature", 0},
                          {"ignore_eos", true}};
  const json cw = post(s, "/v1/chat/completions", chat_body);
  const json& content = cw["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  std::string chat_text;
  for (const json& e : content) {
    chat_text += e["token"].get<std::string>();
    ASSERT_EQ(e["top_logprobs"].size(), 3u);
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);  // greedy
    EXPECT_DOUBLE_EQ(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>());
    EXPECT_GE(e["top_logprobs"][1]["logprob"].get<double>(), e["top_logprobs"][2]["logprob"].get<double>());
    EXPECT_EQ(e["bytes"].size(), e["token"].get<std::string>().size());
  }
  EXPECT_EQ(chat_text, cw["choices"][0]["message"]["content"]);
  json streamed = chat_body;
  streamed["stream"] = true;
  auto rs = c.Post("/v1/chat/completions", streamed.dump(), "application/json");
  ASSERT_TRUE(rs && rs->status == 200);
  size_t chat_streamed = 0;
  for (const json& chunk : sse_chunks(rs->body)) {
    const json& lp = chunk["choices"][0]["logprobs"];
    if (!lp.is_null()) chat_streamed += lp["content"].size();
  }
  EXPECT_EQ(chat_streamed, 6u);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLogprobs, TokenIdAndBatchedPrompts) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const json one = post(s, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
  const json ids = post(s, "/tokenize", {{"prompt", "Once upon a time"}});
  // Token ids are used as given: the same ids give the same completion.
  const json by_ids = post(s, "/v1/completions", {{"prompt", ids["tokens"]}, {"max_tokens", 8}, {"temperature", 0}});
  EXPECT_EQ(by_ids["choices"][0]["text"], one["choices"][0]["text"]);
  EXPECT_EQ(by_ids["usage"]["prompt_tokens"], ids["count"]);
  // Several prompts: one choice each, in order, each as if alone.
  const json batch =
      post(s, "/v1/completions",
           {{"prompt", {ids["tokens"], "The cat", ids["tokens"]}}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(batch["choices"].size(), 3u);
  const json cat = post(s, "/v1/completions", {{"prompt", "The cat"}, {"max_tokens", 8}, {"temperature", 0}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(batch["choices"][i]["index"], i);
  EXPECT_EQ(batch["choices"][0]["text"], one["choices"][0]["text"]);
  EXPECT_EQ(batch["choices"][1]["text"], cat["choices"][0]["text"]);
  EXPECT_EQ(batch["choices"][2]["text"], one["choices"][0]["text"]);
  EXPECT_EQ(batch["usage"]["prompt_tokens"], 2 * ids["count"].get<int>() + cat["usage"]["prompt_tokens"].get<int>());
  EXPECT_EQ(batch["usage"]["completion_tokens"], 24);
  // A token id outside the vocabulary names the prompt; nothing is queued.
  const json bad = post(s, "/v1/completions", {{"prompt", {"fine", {1, 999999}}}, {"max_tokens", 2}}, 400);
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("prompt[1]"), std::string::npos) << bad;
  EXPECT_EQ(s.metric("h2o_requests_in_flight"), 0);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLogprobs, TokenizerEndpoints) {
  ServeProcess s({"--api-key", "k"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  auto c = s.client();
  const httplib::Headers auth = {{"Authorization", "Bearer k"}};
  const auto call = [&](const std::string& path, const std::string& body, int want) {
    auto r = body.empty() ? c.Get(path, auth) : c.Post(path, auth, body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, want) << path << " " << body << " -> " << r->body;
    return json::parse(r->body);
  };
  // What lm-eval's remote tokenizer checks for, then uses.
  const json info = call("/tokenizer_info", "", 200);
  EXPECT_EQ(info["bos_token"], "<s>");
  EXPECT_EQ(info["eos_token"], "</s>");
  EXPECT_EQ(info["model_max_length"], 512);
  const json with_bos = call("/tokenize", R"({"prompt":"Once upon a time"})", 200);
  const json without = call("/tokenize", R"({"prompt":"Once upon a time","add_special_tokens":false})", 200);
  EXPECT_EQ(with_bos["tokens"][0], 1);
  EXPECT_EQ(with_bos["tokens"].size(), without["tokens"].size() + 1);
  EXPECT_EQ(with_bos["count"], with_bos["tokens"].size());
  // A special token's text is that token (as a Hugging Face tokenizer reads it).
  EXPECT_EQ(call("/tokenize", R"({"prompt":"</s>","add_special_tokens":false})", 200)["tokens"], json({2}));
  EXPECT_EQ(call("/detokenize", json{{"tokens", with_bos["tokens"]}}.dump(), 200)["prompt"], "Once upon a time");
  // Bad bodies: 400 naming the field; no key: 401.
  EXPECT_EQ(call("/tokenize", R"({"prompt":5})", 400)["error"]["param"], "prompt");
  EXPECT_EQ(call("/tokenize", R"({"prompt":"a","add_special_tokens":"yes"})", 400)["error"]["param"],
            "add_special_tokens");
  EXPECT_EQ(call("/tokenize", R"({"prompt":)", 400)["error"]["code"], "invalid_json");
  EXPECT_EQ(call("/detokenize", R"({"tokens":[1,512]})", 400)["error"]["param"], "tokens");
  EXPECT_EQ(call("/detokenize", R"({"tokens":[-1]})", 400)["error"]["param"], "tokens");
  EXPECT_EQ(call("/detokenize", R"({"tokens":"1"})", 400)["error"]["param"], "tokens");
  auto no_key = c.Post("/tokenize", R"({"prompt":"a"})", "application/json");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

}  // namespace
}  // namespace h2o::test
