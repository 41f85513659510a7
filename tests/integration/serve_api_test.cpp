// End-to-end tests of `h2o serve` over HTTP on loopback: completions and chat (whole and
// streamed) equal `h2o generate --temp 0` for the same prompt and KV settings, also while
// other requests share the batch; usage and per-request KV objects; /v1/models, /health,
// /metrics; API keys; cancellation on disconnect; graceful shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/run_cli.h"
#include "integration/serve_harness.h"
#include "serve/chat_template.h"
#include "serve/sse_client.h"

namespace h2o::test {
namespace {

using nlohmann::json;
using serve::post_stream;
using serve::StreamResult;

// `h2o generate --json` for the same settings: text, token counts, KV bytes.
json generate_json(const std::string& prompt, int n, const std::vector<std::string>& kv = {},
                   const std::string& model = "stories260K-f32.gguf") {
  std::vector<std::string> args = {"generate", "-m", model_path(model), "-p", prompt, "-n", std::to_string(n),
                                   "--temp",   "0",  "--json"};
  args.insert(args.end(), kv.begin(), kv.end());
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

json post_json(const ServeProcess& s, const std::string& path, const json& body, int expect_status = 200) {
  auto c = s.client();
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response";
  if (!r) return {};
  EXPECT_EQ(r->status, expect_status) << r->body;
  return json::parse(r->body);
}

class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServeProcess({"--parallel", "16"}); }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->stderr_text();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << server_->stderr_text(); }
  static ServeProcess* server_;
};
ServeProcess* ServeApi::server_ = nullptr;

TEST_F(ServeApi, HealthAndModels) {
  auto c = server_->client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  const json j = json::parse(m->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "stories260K-f32");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

TEST_F(ServeApi, GreedyCompletionEqualsGenerate) {
  const json g = generate_json("Once upon a time", 60);
  const json r =
      post_json(*server_, "/v1/completions",
                {{"model", "stories260K-f32"}, {"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], g["text"]);
  EXPECT_EQ(r["choices"][0]["finish_reason"], g["stop_reason"] == "eos" ? "stop" : "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], g["n_prompt"]);
  EXPECT_EQ(r["usage"]["completion_tokens"], g["n_generated"]);
  EXPECT_EQ(r["usage"]["total_tokens"], g["n_prompt"].get<int>() + g["n_generated"].get<int>());
  EXPECT_EQ(r["kv"]["policy"], "full");
  EXPECT_EQ(r["kv"]["kv_bytes_peak"], g["kv_bytes_peak"]);
}

TEST_F(ServeApi, PerRequestKvSettingsEqualGenerateWithThoseFlags) {
  const json g = generate_json("Lily and Ben went to the park.", 120, {"--kv-policy", "h2o", "--kv-budget", "24"});
  const json r = post_json(*server_, "/v1/completions",
                           {{"prompt", "Lily and Ben went to the park."},
                            {"max_tokens", 120},
                            {"temperature", 0},
                            {"kv_policy", "h2o"},
                            {"kv_budget", 24}});
  EXPECT_EQ(r["choices"][0]["text"], g["text"]);
  EXPECT_EQ(r["kv"]["policy"], "h2o");
  EXPECT_EQ(r["kv"]["budget"], 24);
  EXPECT_EQ(r["kv"]["recent"], g["kv"]["recent"]);
  EXPECT_EQ(r["kv"]["kv_bytes_peak"], g["kv_bytes_peak"]);
  EXPECT_LE(r["kv"]["kv_bytes"].get<size_t>(), r["kv"]["kv_bytes_peak"].get<size_t>());

  // A percentage budget, and a window policy with its own recent split.
  const json gp = generate_json("The little dog", 80, {"--kv-policy", "window", "--kv-budget", "20%"});
  const json rp = post_json(*server_, "/v1/completions",
                            {{"prompt", "The little dog"},
                             {"max_tokens", 80},
                             {"temperature", 0},
                             {"kv_policy", "window"},
                             {"kv_budget", "20%"}});
  EXPECT_EQ(rp["choices"][0]["text"], gp["text"]);
  EXPECT_EQ(rp["kv"]["budget"], gp["kv"]["budget"]);
}

TEST_F(ServeApi, StreamedCompletionEqualsWholeAndCarriesUsage) {
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 50}, {"temperature", 0}};
  const json whole = post_json(*server_, "/v1/completions", body);
  json sb = body;
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  auto c = server_->client();
  const StreamResult s = post_stream(c, "/v1/completions", sb.dump());
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.content_type, "text/event-stream");
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.body.substr(s.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_GT(s.events.size(), 10u);  // token by token
  EXPECT_EQ(s.text(), whole["choices"][0]["text"]);
  EXPECT_EQ(s.finish_reason(), "length");
  EXPECT_EQ(s.usage(), whole["usage"]);
  EXPECT_TRUE(s.events.back()["choices"].empty());  // the usage chunk comes last
  EXPECT_EQ(s.events.front()["object"], "text_completion");
  // Without include_usage no usage chunk is sent.
  sb.erase("stream_options");
  const StreamResult s2 = post_stream(c, "/v1/completions", sb.dump());
  EXPECT_TRUE(s2.usage().is_null());
  EXPECT_EQ(s2.text(), s.text());
}

TEST_F(ServeApi, ChatUsesTheDefaultTemplateAndEqualsGenerate) {
  const std::vector<serve::ChatMessage> ms = {{"system", "You tell stories."}, {"user", "Tell me about a cat."}};
  const std::string prompt = serve::render_chat(serve::ChatFormat::Plain, ms);
  const json g = generate_json(prompt, 40);
  const json body = {{"messages",
                      {{{"role", "system"}, {"content", "You tell stories."}},
                       {{"role", "user"}, {"content", "Tell me about a cat."}}}},
                     {"max_tokens", 40},
                     {"temperature", 0}};
  const json r = post_json(*server_, "/v1/chat/completions", body);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], g["text"]);
  EXPECT_EQ(r["usage"]["prompt_tokens"], g["n_prompt"]);
  json sb = body;
  sb["stream"] = true;
  auto c = server_->client();
  const StreamResult s = post_stream(c, "/v1/chat/completions", sb.dump());
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(s.text(), g["text"]);
  EXPECT_EQ(s.events.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(s.events.front()["choices"][0]["delta"]["role"], "assistant");
}

TEST_F(ServeApi, StopStringsCutTheTextAndFinishWithStop) {
  const json g = generate_json("Once upon a time", 60);
  const std::string full = g["text"];
  const size_t at = full.find("Lily");
  ASSERT_NE(at, std::string::npos) << full;
  for (bool stream : {false, true}) {
    const json body = {{"prompt", "Once upon a time"},
                       {"max_tokens", 60},
                       {"temperature", 0},
                       {"stop", {"zzz", "Lily"}},
                       {"stream", stream}};
    auto c = server_->client();
    const StreamResult s = post_stream(c, "/v1/completions", body.dump());
    ASSERT_EQ(s.status, 200) << s.body;
    if (stream) {
      EXPECT_EQ(s.text(), full.substr(0, at));
      EXPECT_EQ(s.finish_reason(), "stop");
    } else {
      const json r = json::parse(s.body);
      EXPECT_EQ(r["choices"][0]["text"], full.substr(0, at));
      EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
      EXPECT_LT(r["usage"]["completion_tokens"].get<int>(), 60);
    }
  }
}

TEST_F(ServeApi, GreedyEqualsGenerateWhileEightOtherRequestsRun) {
  const json g = generate_json("One day, a girl named Sue found a shiny stone.", 100,
                               {"--kv-policy", "tova", "--kv-budget", "32"});
  std::atomic<int> started{0}, failures{0};
  std::vector<std::thread> others;
  for (int i = 0; i < 8; ++i) {
    others.emplace_back([&, i] {
      const char* policies[] = {"full", "h2o", "window", "sink"};
      json body = {{"prompt", "The little dog " + std::to_string(i)},
                   {"max_tokens", 300 + 20 * i},
                   {"ignore_eos", true},
                   {"temperature", 0.9},
                   {"seed", i},
                   {"stream", true},
                   {"kv_policy", policies[i % 4]}};
      if (i % 4) body["kv_budget"] = 48;
      auto c = server_->client();
      ++started;
      const StreamResult s = post_stream(c, "/v1/completions", body.dump());
      if (s.status != 200 || !s.done) ++failures;
    });
  }
  while (started < 8) std::this_thread::yield();
  // Make sure the others are decoding when the checked request arrives.
  for (int tries = 0; tries < 200 && server_->metric("h2o_sequences") < 4; ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const json r = post_json(*server_, "/v1/completions",
                           {{"prompt", "One day, a girl named Sue found a shiny stone."},
                            {"max_tokens", 100},
                            {"temperature", 0},
                            {"kv_policy", "tova"},
                            {"kv_budget", 32}});
  for (auto& t : others) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(r["choices"][0]["text"], g["text"]);
  EXPECT_EQ(r["usage"]["completion_tokens"], g["n_generated"]);
}

TEST_F(ServeApi, SeededSamplingIsReproducible) {
  const json body = {
      {"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 1.0}, {"top_p", 0.9}, {"seed", 1234}};
  const json a = post_json(*server_, "/v1/completions", body);
  const json b = post_json(*server_, "/v1/completions", body);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
}

TEST_F(ServeApi, MetricsCountRequestsAndTokens) {
  const double ok_before = server_->metric(R"(h2o_requests_total{endpoint="/v1/completions",code="200"})");
  const double bad_before = server_->metric(R"(h2o_requests_total{endpoint="/v1/completions",code="400"})");
  const double gen_before = server_->metric("h2o_generated_tokens_total");
  const double prompt_before = server_->metric("h2o_prompt_tokens_total");
  const json r = post_json(*server_, "/v1/completions",
                           {{"prompt", "Hi"}, {"max_tokens", 7}, {"temperature", 0}, {"ignore_eos", true}});
  post_json(*server_, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", -7}}, 400);
  EXPECT_EQ(server_->metric(R"(h2o_requests_total{endpoint="/v1/completions",code="200"})"), ok_before + 1);
  EXPECT_EQ(server_->metric(R"(h2o_requests_total{endpoint="/v1/completions",code="400"})"), bad_before + 1);
  EXPECT_EQ(server_->metric("h2o_generated_tokens_total"), gen_before + 7);
  EXPECT_EQ(server_->metric("h2o_prompt_tokens_total"), prompt_before + r["usage"]["prompt_tokens"].get<double>());
  EXPECT_GT(server_->metric("h2o_request_duration_seconds_count"), 0);
  EXPECT_GT(server_->metric("h2o_time_to_first_token_seconds_count"), 0);
  EXPECT_EQ(server_->metric("h2o_kv_bytes"), 0);
  EXPECT_EQ(server_->metric("h2o_requests_in_flight"), 0);
}

TEST(ServeAuth, ApiKeyGuardsEverythingButHealth) {
  ServeProcess s({"--api-key", "sekret"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  auto c = s.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  auto no_key = c.Get("/v1/models");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(c.Get("/metrics")->status, 401);
  const std::string body = json{{"prompt", "Hi"}, {"max_tokens", 3}}.dump();
  EXPECT_EQ(c.Post("/v1/completions", body, "application/json")->status, 401);
  EXPECT_EQ(post_stream(c, "/v1/completions", body, "wrong").status, 401);
  EXPECT_EQ(post_stream(c, "/v1/completions", body, "sekret").status, 200);
  EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer sekret"}})->status, 200);
  EXPECT_EQ(s.metric(R"(h2o_requests_total{endpoint="/v1/completions",code="401"})", "sekret"), 2);
  EXPECT_EQ(s.stop(SIGINT), 0);
}

TEST(ServeCancel, DisconnectedClientFreesItsSequence) {
  // books4M decodes ~1 ms/token: 500 tokens outlast the disconnect by far.
  ServeProcess s({}, "books4M-f32.gguf");
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  {
    RawConnection conn(s.port());
    const std::string body =
        json{{"prompt", "The"}, {"max_tokens", 500}, {"ignore_eos", true}, {"stream", true}}.dump();
    ASSERT_TRUE(conn.send_all(raw_post("/v1/completions", body)));
    const std::string first = conn.read_until_close(std::chrono::seconds(20), 200);
    ASSERT_NE(first.find("data: "), std::string::npos) << first;
  }  // closed after the first token
  // The worker notices at its next write; the engine drops the sequence before its next step.
  for (int i = 0; i < 500 && (s.metric("h2o_requests_in_flight") > 0 || s.metric("h2o_sequences") > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.metric(R"(h2o_requests_total{endpoint="/v1/completions",code="499"})"), 1);
  EXPECT_EQ(s.metric("h2o_engine_cancelled_total"), 1);
  EXPECT_LT(s.metric("h2o_generated_tokens_total"), 400);
  EXPECT_EQ(s.metric("h2o_kv_bytes"), 0);
  EXPECT_EQ(s.metric("h2o_sequences"), 0);
  EXPECT_EQ(s.stop(), 0);
}

TEST(ServeShutdown, SigtermLetsInFlightRequestsFinishThenExitsCleanly) {
  ServeProcess s({"--shutdown-grace", "30"}, "books4M-f32.gguf");
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  StreamResult result;
  std::atomic<bool> got_first{false};
  std::thread client([&] {
    auto c = s.client();
    const json body = {{"prompt", "The"}, {"max_tokens", 300}, {"ignore_eos", true}, {"stream", true}};
    result = post_stream(c, "/v1/completions", body.dump());
  });
  for (int i = 0; i < 1000 && s.metric("h2o_sequences") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(s.pid(), SIGTERM);
  // While draining, new requests are refused with 503 and /health says so.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto c = s.client();
  auto h = c.Get("/health");
  if (h) EXPECT_EQ(h->status, 503);
  auto refused = c.Post("/v1/completions", json{{"prompt", "Hi"}}.dump(), "application/json");
  if (refused) EXPECT_EQ(refused->status, 503);
  client.join();
  EXPECT_EQ(result.status, 200);
  EXPECT_TRUE(result.done);
  EXPECT_EQ(result.usage().is_null(), true);
  EXPECT_EQ(result.finish_reason(), "length");
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.stderr_text();  // already exiting: waits for the exit
  EXPECT_NE(s.stderr_text().find("stopped"), std::string::npos);
}

TEST(ServeShutdown, GraceExpiryCancelsCleanly) {
  ServeProcess s({"--shutdown-grace", "0"}, "books4M-f32.gguf");
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  StreamResult result;
  std::thread client([&] {
    auto c = s.client();
    result = post_stream(c, "/v1/completions",
                         json{{"prompt", "The"}, {"max_tokens", 500}, {"ignore_eos", true}, {"stream", true}}.dump());
  });
  for (int i = 0; i < 1000 && s.metric("h2o_sequences") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.stderr_text();
  client.join();
  // The stream ends with an error event and [DONE], not a dropped connection.
  EXPECT_EQ(result.status, 200);
  EXPECT_TRUE(result.done) << result.body.substr(result.body.size() > 300 ? result.body.size() - 300 : 0);
  ASSERT_FALSE(result.events.empty());
  EXPECT_EQ(result.events.back()["error"]["code"], "shutting_down");
}

}  // namespace
}  // namespace h2o::test
