// Hostile and invalid input against the real `h2o serve`: every bad request gets a clear
// 4xx with an OpenAI error object (or, for a stalled connection, a timeout), and the
// server keeps serving others throughout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "integration/serve_harness.h"
#include "serve/sse_client.h"

namespace h2o::test {
namespace {

using nlohmann::json;

class ServeHostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--max-body", "4096", "--max-prompt-tokens", "64", "--max-tokens-limit", "200",
                                "--read-timeout", "1", "--kv-policy", "h2o", "--kv-budget", "32"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->stderr_text();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << server_->stderr_text(); }
  void TearDown() override { expect_still_serving(); }

  // The server answers a normal request after whatever the test did.
  static void expect_still_serving() {
    auto c = server_->client();
    auto r = c.Post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}}.dump(), "application/json");
    ASSERT_TRUE(r) << "server stopped answering";
    EXPECT_EQ(r->status, 200) << r->body;
  }

  // POSTs raw bytes with httplib's client and checks the OpenAI error object.
  static json expect_error(const std::string& path, const std::string& body, int status,
                           const std::string& param = "*") {
    auto c = server_->client();
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, status) << body.substr(0, 200) << " -> " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r->body;
    if (!j.is_object() || !j.contains("error")) return {};
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("param") && j["error"].contains("code"));
    if (param != "*") EXPECT_EQ(j["error"]["param"], param.empty() ? json(nullptr) : json(param)) << r->body;
    return j;
  }
  static ServeProcess* server_;
};
ServeProcess* ServeHostile::server_ = nullptr;

TEST_F(ServeHostile, MalformedJsonAndWrongTypesAre400) {
  for (const std::string body : {"", "{", "{\"prompt\": \"x\"", "not json", "[]", "{\"prompt\":\"a\",,}", "\"str\""})
    expect_error("/v1/completions", body, 400, "");
  expect_error("/v1/completions", R"({"prompt":42})", 400, "prompt");
  expect_error("/v1/completions", R"({"prompt":"a","temperature":"warm"})", 400, "temperature");
  expect_error("/v1/completions", R"({"prompt":"a","stream":1})", 400, "stream");
  expect_error("/v1/chat/completions", R"({"messages":{"role":"user"}})", 400, "messages");
  expect_error("/v1/chat/completions", R"({"prompt":"a"})", 400, "messages");
}

TEST_F(ServeHostile, BadParameterValuesAre400AndUnknownModel404) {
  expect_error("/v1/completions", R"({"prompt":"a","max_tokens":-5})", 400, "max_tokens");
  expect_error("/v1/completions", R"({"prompt":"a","max_tokens":99999999999999999999})", 400, "max_tokens");
  expect_error("/v1/completions", R"({"prompt":"a","max_tokens":1e308})", 400, "max_tokens");
  expect_error("/v1/completions", R"({"prompt":"a","max_tokens":201})", 400, "max_tokens");  // --max-tokens-limit
  expect_error("/v1/completions", R"({"prompt":"a","temperature":-1e308})", 400, "temperature");
  expect_error("/v1/completions", R"({"prompt":"a","top_p":-0.1})", 400, "top_p");
  expect_error("/v1/completions", R"({"prompt":"a","n":3})", 400, "n");
  expect_error("/v1/completions", R"({"prompt":"a","kv_policy":"lru"})", 400, "kv_policy");
  expect_error("/v1/completions", R"({"prompt":"a","kv_budget":"0%"})", 400, "kv_budget");
  expect_error("/v1/completions", R"({"prompt":"a","kv_recent":64})", 400, "kv_recent");  // more than the budget
  expect_error("/v1/completions", R"({"prompt":"a","kv_policy":"full","kv_budget":8})", 400, "kv_budget");
  const json e = expect_error("/v1/completions", R"({"model":"gpt-4o","prompt":"a"})", 404, "model");
  EXPECT_EQ(e["error"]["code"], "model_not_found");
}

TEST_F(ServeHostile, InvalidUtf8AndDeepNestingAre400) {
  expect_error("/v1/completions", "{\"prompt\":\"abc\xc3\x28\xff\"}", 400, "");
  expect_error("/v1/completions", R"({"prompt":"\ud800"})", 400, "");
  const std::string deep = "{\"prompt\":\"a\",\"x\":" + std::string(1500, '[') + std::string(1500, ']') + "}";
  expect_error("/v1/completions", deep, 400, "");
}

TEST_F(ServeHostile, TerminalEscapesInRequestsAreEscapedInErrorMessages) {
  // A role quoted back in the message: once the client decodes the JSON, no escape
  // sequence may be left in it.
  const json e = expect_error("/v1/chat/completions",
                              json{{"messages", {{{"role", "\x1b]0;pwned\x07\x1b[2J\u009b"}, {"content", "x"}}}}}.dump(),
                              400);
  const std::string message = e["error"]["message"];
  for (const char c : message) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << message;
  EXPECT_EQ(message.find("\xc2\x9b"), std::string::npos) << message;
  EXPECT_NE(message.find("\\x1B]0;pwned\\x07"), std::string::npos) << message;
}

TEST_F(ServeHostile, OversizedBodiesAndPromptsAreRefused) {
  const std::string big = json{{"prompt", std::string(5000, 'a')}}.dump();
  const json e = expect_error("/v1/completions", big, 413);
  EXPECT_EQ(e["error"]["code"], "body_too_large");
  // Within the body limit but over --max-prompt-tokens 64.
  std::string words;
  for (int i = 0; i < 100; ++i) words += "dog cat ";
  const json p = expect_error("/v1/completions", json{{"prompt", words}}.dump(), 400, "prompt");
  EXPECT_EQ(p["error"]["code"], "context_length_exceeded");
  // A huge Content-Length is refused before any body is read.
  RawConnection conn(server_->port());
  conn.send_all(raw_post("/v1/completions", "{}", 1L << 40));
  EXPECT_EQ(raw_status(conn.read_until_close(std::chrono::seconds(10))), 413);
}

TEST_F(ServeHostile, TruncatedBodiesGet400OrTimeOut) {
  {  // The client says 100 bytes, sends 20 and closes its side.
    RawConnection conn(server_->port());
    conn.send_all(raw_post("/v1/completions", R"({"prompt":"Once upo)", 100));
    conn.shutdown_write();
    const std::string resp = conn.read_until_close(std::chrono::seconds(10));
    EXPECT_TRUE(resp.empty() || raw_status(resp) == 400) << resp;
    EXPECT_TRUE(conn.closed_by_peer());
  }
  {  // ... or sends 20 and stalls: --read-timeout 1 drops it.
    RawConnection conn(server_->port());
    conn.send_all(raw_post("/v1/completions", R"({"prompt":"Once upo)", 100));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string resp = conn.read_until_close(std::chrono::seconds(15));
    EXPECT_TRUE(resp.empty() || raw_status(resp) >= 400) << resp;
    EXPECT_TRUE(conn.closed_by_peer());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  }
  {  // A complete HTTP body holding truncated JSON is a JSON error.
    RawConnection conn(server_->port());
    conn.send_all(raw_post("/v1/completions", R"({"prompt":"Once upo)"));
    const std::string resp = conn.read_until_close(std::chrono::seconds(10));
    EXPECT_EQ(raw_status(resp), 400) << resp;
    EXPECT_NE(resp.find("invalid_request_error"), std::string::npos);
  }
}

TEST_F(ServeHostile, SlowClientsDoNotBlockOthers) {
  // Three clients that send half a request line or headers and stall.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (const std::string part :
       {"POST /v1/comp", "POST /v1/completions HTTP/1.1\r\nHost: x\r\n", "GET /health HTTP/1.1\r\n"}) {
    slow.push_back(std::make_unique<RawConnection>(server_->port()));
    slow.back()->send_all(part);
  }
  // Meanwhile others are served, streamed and whole.
  auto c = server_->client();
  const serve::StreamResult s =
      serve::post_stream(c, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 20}, {"stream", true}}.dump());
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.done);
  expect_still_serving();
  // And the stalled ones are dropped after the read timeout.
  for (auto& conn : slow) {
    const std::string resp = conn->read_until_close(std::chrono::seconds(10));
    EXPECT_TRUE(conn->closed_by_peer()) << resp;
    EXPECT_TRUE(resp.empty() || raw_status(resp) >= 400) << resp;
  }
}

TEST_F(ServeHostile, UnknownRoutesAndMethodsGetJsonErrors) {
  auto c = server_->client();
  std::vector<httplib::Result> results;
  results.push_back(c.Get("/v1/nothing"));
  results.push_back(c.Get("/v1/completions"));
  results.push_back(c.Delete("/v1/models"));
  for (const auto& r : results) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_TRUE(json::parse(r->body)["error"].is_object()) << r->body;
  }
  // Garbage instead of HTTP.
  RawConnection conn(server_->port());
  conn.send_all("\x16\x03\x01 garbage that is not HTTP\r\n\r\n");
  const std::string resp = conn.read_until_close(std::chrono::seconds(10));
  EXPECT_TRUE(resp.empty() || raw_status(resp) == 400) << resp;
}

TEST(ServeBusy, FullQueueGets429) {
  ServeProcess s({"--parallel", "1", "--queue", "0"}, "books4M-f32.gguf");
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  std::thread long_request([&] {
    auto c = s.client();
    serve::post_stream(c, "/v1/completions",
                       json{{"prompt", "The"}, {"max_tokens", 400}, {"ignore_eos", true}, {"stream", true}}.dump());
  });
  for (int i = 0; i < 1000 && s.metric("h2o_sequences") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto c = s.client();
  auto r = c.Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  long_request.join();
  EXPECT_EQ(s.stop(), 0);
}

}  // namespace
}  // namespace h2o::test
