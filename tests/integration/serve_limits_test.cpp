// The limits of `h2o serve` against the real binary over loopback: a total deadline for a
// request (a client trickling a byte at a time is dropped on time), header byte and field
// caps (431), connection caps per client and in total (503 at once), queue slots that are
// not threads, validated flags, pipelined requests answered in order, a whole response
// cancelled at shutdown answered 503, and the API key compared exactly.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/run_cli.h"
#include "integration/serve_harness.h"
#include "serve/sse_client.h"

namespace h2o::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ServeLimits, TricklingClientsAreDroppedAtTheRequestDeadline) {
  ServeProcess s({"--read-timeout", "2"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  // 20 clients each send a request line, then one header byte every 200 ms: every receive
  // is quick, but the request never completes. Each must be closed 2 s after it began.
  constexpr int kClients = 20;
  std::vector<std::unique_ptr<RawConnection>> conns;
  std::vector<Clock::time_point> closed_at(kClients);
  const auto t0 = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    conns.push_back(std::make_unique<RawConnection>(s.port()));
    conns.back()->send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  }
  double worst_health_s = 0;
  int open = kClients;
  while (open > 0 && Clock::now() - t0 < seconds(8)) {
    std::this_thread::sleep_for(milliseconds(200));
    for (int i = 0; i < kClients; ++i) {
      if (closed_at[i] != Clock::time_point{}) continue;
      pollfd p{conns[i]->fd(), POLLIN, 0};
      char c = 0;
      // Closed by the server: readable, and recv sees the end (or the response is gone).
      const bool gone = (poll(&p, 1, 0) > 0 && recv(conns[i]->fd(), &c, 1, MSG_DONTWAIT) <= 0) ||
                        send(conns[i]->fd(), "a", 1, MSG_NOSIGNAL) < 0;
      if (gone) {
        closed_at[i] = Clock::now();
        --open;
      }
    }
    const auto [status, took] = timed_get(s.port(), "/health", seconds(5));
    EXPECT_EQ(status, 200);
    worst_health_s = std::max(worst_health_s, took.count());
  }
  EXPECT_EQ(open, 0) << "trickling clients still connected after 8 s with --read-timeout 2";
  for (int i = 0; i < kClients; ++i) {
    if (closed_at[i] == Clock::time_point{}) continue;
    const double after = std::chrono::duration<double>(closed_at[i] - t0).count();
    EXPECT_GE(after, 1.5) << i;
    EXPECT_LT(after, 4.0) << i;
  }
  EXPECT_LT(worst_health_s, 1.0);
  EXPECT_GE(s.metric(R"(h2o_connection_events_total{event="read_timeout"})"), kClients);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLimits, HeaderFloodsGet431AndLeaveNoMemoryBehind) {
  ServeProcess s({"--max-header-bytes", "16384", "--max-header-count", "64"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const long rss_before = s.rss_kb();
  {  // A million headers (about 14 MB): refused once the first 16 KiB are in.
    RawConnection conn(s.port());
    std::string response;
    std::thread reader([&] { response = conn.read_until_close(seconds(20), 4096); });
    conn.send_all("GET /health HTTP/1.1\r\nHost: x\r\n");
    std::string batch;
    for (int i = 0; i < 1000000; ++i) {
      batch += "X-Flood-" + std::to_string(i) + ": v\r\n";
      if (batch.size() > 65536) {
        if (!conn.send_all(batch)) break;  // the server closed the connection
        batch.clear();
      }
    }
    reader.join();
    EXPECT_EQ(raw_status(response), 431) << response.substr(0, 200);
  }
  {  // 100 short fields: few bytes, but over the field count.
    RawConnection conn(s.port());
    std::string req = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 100; ++i) req += "a" + std::to_string(i) + ": b\r\n";
    conn.send_all(req + "\r\n");
    const std::string response = conn.read_until_close(seconds(10));
    EXPECT_EQ(raw_status(response), 431) << response.substr(0, 200);
    EXPECT_NE(response.find("header_too_large"), std::string::npos);
  }
  {  // 60 fields is within the limits.
    RawConnection conn(s.port());
    std::string req = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    for (int i = 0; i < 60; ++i) req += "a" + std::to_string(i) + ": b\r\n";
    conn.send_all(req + "\r\n");
    EXPECT_EQ(raw_status(conn.read_until_close(seconds(10))), 200);
  }
  const long rss_after = s.rss_kb();
#if !H2O_UNDER_ASAN
  EXPECT_LT(rss_after - rss_before, 8 * 1024) << "RSS " << rss_before << " -> " << rss_after << " KiB";
#endif
  EXPECT_EQ(s.metric(R"(h2o_requests_total{endpoint="/health",code="431"})"), 2);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLimits, ConnectionsOverTheCapsAreAnswered503AtOnce) {
  ServeProcess s({"--max-client-connections", "4", "--max-connections", "8"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const auto expect_refused = [&](const char* from, const std::string& why) {
    RawConnection extra(s.port(), from);
    const auto t0 = Clock::now();
    const std::string resp = extra.read_until_close(seconds(5));
    EXPECT_EQ(raw_status(resp), 503) << resp;
    EXPECT_NE(resp.find(why), std::string::npos) << resp;
    EXPECT_TRUE(extra.closed_by_peer());
    EXPECT_LT(Clock::now() - t0, seconds(1));
  };
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawConnection>(s.port(), "127.0.0.2"));
  std::this_thread::sleep_for(milliseconds(100));  // accepted and counted
  expect_refused("127.0.0.2", "at most 4 per client");
  // Another address is still served.
  EXPECT_EQ(timed_get(s.port(), "/health", seconds(5), "127.0.0.3").first, 200);
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawConnection>(s.port(), "127.0.0.3"));
  std::this_thread::sleep_for(milliseconds(100));
  expect_refused("127.0.0.4", "the server holds at most 8");
  // Closing frees the slots at once.
  idle.clear();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(timed_get(s.port(), "/health", seconds(5), "127.0.0.2").first, 200);
  EXPECT_EQ(s.metric(R"(h2o_connection_events_total{event="refused_client"})"), 1);
  EXPECT_EQ(s.metric(R"(h2o_connection_events_total{event="refused_total"})"), 1);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLimits, QueueSlotsAreNotThreads) {
  // 5000 queue slots: the old thread-per-waiting-request design started 5000+ threads.
  ServeProcess s({"--queue", "5000", "--parallel", "4"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  EXPECT_LT(s.threads(), 16);
  EXPECT_EQ(timed_get(s.port(), "/health", seconds(5)).first, 200);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLimits, OutOfRangeLimitsAreRefusedNamingTheFlag) {
  const std::string model = model_path("stories260K-f32.gguf");
  const auto refused = [&](std::vector<std::string> flags, const std::string& message) {
    std::vector<std::string> args = {"serve", "-m", model, "--port", "0"};
    args.insert(args.end(), flags.begin(), flags.end());
    const CliResult r = run_cli(args, {seconds(20), 0});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  };
  refused({"--queue", "100000000"}, "--queue");
  refused({"--queue", "-1"}, "--queue");
  refused({"--max-connections", "0"}, "--max-connections");
  refused({"--max-client-connections", "300", "--max-connections", "200"},
          "--max-client-connections: 300 is more than --max-connections 200");
  refused({"--max-header-bytes", "10"}, "--max-header-bytes");
  refused({"--max-body", "18446744073709551616"}, "--max-body");
  refused({"--http-threads", "0"}, "--http-threads");
}

TEST(ServeLimits, PipelinedRequestsAreAnsweredInOrder) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const std::string body = json{{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}}.dump();
  // Several rounds: a response written twice (a late engine notification while its bytes
  // are still being written) shows up as an extra response on some rounds only.
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    RawConnection conn(s.port());
    // Three requests in one write; the last asks to close.
    conn.send_all("GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
                  ("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body) +
                  "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::vector<RawResponse> rs = split_responses(conn.read_until_close(seconds(20)));
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0].status, 200);
    EXPECT_EQ(json::parse(rs[0].body)["status"], "ok");
    EXPECT_EQ(rs[1].status, 200);
    EXPECT_EQ(json::parse(rs[1].body)["usage"]["completion_tokens"], 12);
    EXPECT_EQ(rs[2].status, 200);
    EXPECT_EQ(json::parse(rs[2].body)["object"], "list");
    EXPECT_TRUE(conn.closed_by_peer());
  }
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

TEST(ServeLimits, WholeResponseCancelledAtShutdownIs503) {
  ServeProcess s({"--shutdown-grace", "0"}, "books4M-f32.gguf");
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  int status = 0;
  std::string body;
  std::thread client([&] {
    auto c = s.client();
    auto r = c.Post("/v1/completions", json{{"prompt", "The"}, {"max_tokens", 500}, {"ignore_eos", true}}.dump(),
                    "application/json");
    if (r) {
      status = r->status;
      body = r->body;
    }
  });
  for (int i = 0; i < 1000 && s.metric("h2o_sequences") < 1; ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.stderr_text();
  client.join();
  EXPECT_EQ(status, 503) << body;
  const json j = json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << body;
  EXPECT_EQ(j["error"]["code"], "shutting_down");
}

TEST(ServeLimits, ApiKeyIsComparedExactly) {
  ServeProcess s({"--api-key", "sekret"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  const auto status_with = [&](const std::string& auth_lines) {
    RawConnection conn(s.port());
    conn.send_all("GET /v1/models HTTP/1.1\r\nHost: x\r\n" + auth_lines + "Connection: close\r\n\r\n");
    return raw_status(conn.read_until_close(seconds(10)));
  };
  EXPECT_EQ(status_with("Authorization: Bearer sekret\r\n"), 200);
  EXPECT_EQ(status_with("Authorization: bearer sekret\r\n"), 200);  // the scheme is case-insensitive
  EXPECT_EQ(status_with("Authorization: Bearer sekret \r\n"), 401);
  EXPECT_EQ(status_with("Authorization: Bearer sekret\t\r\n"), 401);
  const char with_nul[] = "Authorization: Bearer sekret\0garbage\r\n";
  EXPECT_EQ(status_with(std::string(with_nul, sizeof with_nul - 1)) / 100, 4);
  EXPECT_EQ(status_with("Authorization: Bearer sekretx\r\n"), 401);
  EXPECT_EQ(status_with("Authorization: Bearer sekre\r\n"), 401);
  EXPECT_EQ(status_with("Authorization: Bearer  sekret\r\n"), 401);
  EXPECT_EQ(status_with("Authorization: Basic sekret\r\n"), 401);
  EXPECT_EQ(status_with("Authorization: Bearer sekret\r\nAuthorization: Bearer other\r\n"), 401);
  EXPECT_EQ(status_with(""), 401);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

}  // namespace
}  // namespace h2o::test
