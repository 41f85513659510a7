// Bounded load test of `h2o serve` over loopback: 64 concurrent streaming clients, several
// requests each, mixed lengths and KV policies. No request may fail, the server's RSS
// must stay flat across rounds (a leak would grow it; skipped under ASan, whose
// quarantine holds freed memory, but LeakSanitizer checks the server's exit there), and
// /metrics must agree with what was sent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/serve_harness.h"
#include "serve/sse_client.h"

namespace h2o::test {
namespace {

using nlohmann::json;

struct RoundTotals {
  int ok = 0, failed = 0;
  long prompt_tokens = 0, completion_tokens = 0;
  std::string first_failure;
};

// `clients` threads, each sending `per_client` streaming requests in turn.
RoundTotals run_round(const ServeProcess& s, int clients, int per_client, int round) {
  const int lengths[] = {8, 24, 48, 96};
  const char* policies[] = {"full", "h2o", "window", "tova", "sink", "random"};
  RoundTotals t;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto cli = s.client(120);
      for (int r = 0; r < per_client; ++r) {
        const int k = (round * clients + c) * per_client + r;
        json body = {{"prompt", k % 3 ? "Once upon a time" : "Lily and Ben went to the park. They saw a big dog and"},
                     {"max_tokens", lengths[k % 4]},
                     {"ignore_eos", true},
                     {"temperature", k % 2 ? 0.0 : 0.8},
                     {"seed", k},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"kv_policy", policies[k % 6]}};
        if (k % 6) body["kv_budget"] = k % 5 ? json(16 + k % 32) : json("25%");
        const serve::StreamResult res = serve::post_stream(cli, "/v1/completions", body.dump());
        const json usage = res.usage();
        std::lock_guard lock(mu);
        if (res.status == 200 && res.done && usage.is_object() && usage["completion_tokens"] == lengths[k % 4]) {
          ++t.ok;
          t.prompt_tokens += usage["prompt_tokens"].get<long>();
          t.completion_tokens += usage["completion_tokens"].get<long>();
        } else {
          ++t.failed;
          if (t.first_failure.empty())
            t.first_failure = std::to_string(res.status) + " " + res.transport_error + " " + res.body.substr(0, 300);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return t;
}

// A client may have its whole response before the server has counted the request (the
// counters are updated when the handler finishes, then in_flight drops): wait for
// in_flight to reach 0 before reading counters.
void wait_until_idle(ServeProcess& s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.metric("h2o_requests_in_flight") != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST(ServeLoad, SixtyFourStreamingClientsNoFailureNoLeakConsistentMetrics) {
  constexpr int kClients = 64, kPerClient = 3;
  ServeProcess s({"--parallel", "32", "--queue", "64"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  // Warm-up round: thread stacks, allocator arenas and caches reach their working size.
  const RoundTotals warm = run_round(s, kClients, kPerClient, 0);
  ASSERT_EQ(warm.failed, 0) << warm.first_failure;
  wait_until_idle(s);
  const long rss_before = s.rss_kb();
  const double ok_before = s.metric(R"(h2o_requests_total{endpoint="/v1/completions",code="200"})");
  const double gen_before = s.metric("h2o_generated_tokens_total");
  const double prompt_before = s.metric("h2o_prompt_tokens_total");
  const double lat_before = s.metric("h2o_request_duration_seconds_count");

  RoundTotals total;
  for (int round = 1; round <= 2; ++round) {
    const RoundTotals t = run_round(s, kClients, kPerClient, round);
    EXPECT_EQ(t.failed, 0) << t.first_failure;
    total.ok += t.ok;
    total.prompt_tokens += t.prompt_tokens;
    total.completion_tokens += t.completion_tokens;
  }
  EXPECT_EQ(total.ok, 2 * kClients * kPerClient);
  wait_until_idle(s);

  EXPECT_EQ(s.metric(R"(h2o_requests_total{endpoint="/v1/completions",code="200"})") - ok_before, total.ok);
  EXPECT_EQ(s.metric("h2o_generated_tokens_total") - gen_before, static_cast<double>(total.completion_tokens));
  EXPECT_EQ(s.metric("h2o_prompt_tokens_total") - prompt_before, static_cast<double>(total.prompt_tokens));
  EXPECT_EQ(s.metric("h2o_request_duration_seconds_count") - lat_before, total.ok);
  EXPECT_EQ(s.metric(R"(h2o_requests_total{endpoint="/v1/completions",code="499"})"), 0);
  EXPECT_EQ(s.metric("h2o_requests_in_flight"), 0);
  EXPECT_EQ(s.metric("h2o_queue_depth"), 0);
  EXPECT_EQ(s.metric("h2o_sequences"), 0);
  EXPECT_EQ(s.metric("h2o_kv_bytes"), 0);
  EXPECT_GT(s.metric("h2o_batch_size"), 0);

  const long rss_after = s.rss_kb();
  RecordProperty("rss_before_kb", std::to_string(rss_before));
  RecordProperty("rss_after_kb", std::to_string(rss_after));
#if !H2O_UNDER_ASAN
  // Two rounds of 192 requests each: a per-request leak of even a few KiB would show.
  EXPECT_LT(rss_after - rss_before, 4 * 1024) << "RSS " << rss_before << " -> " << rss_after << " KiB";
#endif
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();  // under ASan, LeakSanitizer runs at this exit
}

}  // namespace
}  // namespace h2o::test
