// The pure parts of `h2o serve`'s HTTP layer: API key matching, connection admission,
// response bytes, and the validation of the server's limits.
#include <gtest/gtest.h>

#include "common/error.h"
#include "serve/api_key.h"
#include "serve/connection_limiter.h"
#include "serve/http_response.h"
#include "serve/server_options.h"

namespace h2o::serve {
namespace {

TEST(ServeApiKey, BearerMatchesExactly) {
  EXPECT_TRUE(bearer_matches("Bearer sekret", "sekret"));
  EXPECT_TRUE(bearer_matches("bEARER sekret", "sekret"));  // RFC 9110: schemes are case-insensitive
  EXPECT_FALSE(bearer_matches("Bearer sekret ", "sekret"));
  EXPECT_FALSE(bearer_matches("Bearer  sekret", "sekret"));
  EXPECT_FALSE(bearer_matches(std::string_view("Bearer sekret\0x", 15), "sekret"));
  EXPECT_FALSE(bearer_matches("Bearer sekre", "sekret"));
  EXPECT_FALSE(bearer_matches("Bearer sekretsekret", "sekret"));
  EXPECT_FALSE(bearer_matches("Basic sekret", "sekret"));
  EXPECT_FALSE(bearer_matches("Bearer", "sekret"));
  EXPECT_FALSE(bearer_matches("Bearer ", ""));  // an empty key never matches
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("a", ""));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}

TEST(ServeConnectionLimiter, CapsPerClientAndInTotal) {
  ConnectionLimiter l(3, 2);
  using V = ConnectionLimiter::Verdict;
  EXPECT_EQ(l.admit("a"), V::Admitted);
  EXPECT_EQ(l.admit("a"), V::Admitted);
  EXPECT_EQ(l.admit("a"), V::TooManyFromClient);
  EXPECT_EQ(l.admit("b"), V::Admitted);
  EXPECT_EQ(l.admit("c"), V::TooManyTotal);
  EXPECT_EQ(l.open(), 3);
  EXPECT_EQ(l.refused(), 2u);
  l.release("a");
  EXPECT_EQ(l.open_from("a"), 1);
  EXPECT_EQ(l.admit("c"), V::Admitted);
  l.release("a");
  l.release("b");
  l.release("c");
  l.release("never-admitted");  // ignored
  EXPECT_EQ(l.open(), 0);
  EXPECT_EQ(l.open_from("a"), 0);
}

TEST(ServeHttpResponse, WholeAndChunked) {
  EXPECT_EQ(http_response(404, "application/json", "{}", true, {{"X-A", "1"}}),
            "HTTP/1.1 404 Not Found\r\nServer: h2o.cpp\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            "X-A: 1\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(http_stream_head(200, "text/event-stream", true, true, {}),
            "HTTP/1.1 200 OK\r\nServer: h2o.cpp\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  // HTTP/1.0: no chunks, the body ends with the connection.
  EXPECT_EQ(http_stream_head(200, "text/event-stream", false, true, {}),
            "HTTP/1.1 200 OK\r\nServer: h2o.cpp\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(http_chunk(std::string(26, 'z')), "1a\r\n" + std::string(26, 'z') + "\r\n");
  EXPECT_EQ(http_chunk(""), "");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
}

TEST(ServeOptions, LimitsAreValidatedNamingTheFlag) {
  const auto error_of = [](const ServerOptions& o) {
    try {
      validate_server_options(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of(ServerOptions{}), "");
  ServerOptions o;
  o.max_client_connections = 300;
  o.max_connections = 200;
  EXPECT_EQ(error_of(o), "--max-client-connections: 300 is more than --max-connections 200");
  o = {};
  o.scheduler.max_queue = kMaxQueue + 1;
  EXPECT_NE(error_of(o).find("--queue"), std::string::npos);
  o = {};
  o.read_timeout_s = 0;
  EXPECT_NE(error_of(o).find("--read-timeout"), std::string::npos);
  o = {};
  o.max_header_bytes = 100;
  EXPECT_NE(error_of(o).find("--max-header-bytes"), std::string::npos);
  o = {};
  o.http_threads = 0;
  EXPECT_NE(error_of(o).find("--http-threads"), std::string::npos);
}

}  // namespace
}  // namespace h2o::serve
