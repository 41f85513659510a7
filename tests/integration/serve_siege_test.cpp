// `h2o serve` under attack, bounded and over loopback only: 200 connections trickling one
// header byte every second (reconnecting whenever the server drops them at the request
// deadline) and a client flooding headers in a loop, while 16 normal clients stream
// completions. Every normal request must complete, /health must answer within 1 s
// throughout, and afterwards the server's threads and RSS must be back at their baseline.
// The figures go to the test's properties (and stdout) for docs/benchmarks.md.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/serve_harness.h"
#include "serve/sse_client.h"

namespace h2o::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kTricklers = 200;
constexpr int kStreamers = 16;
constexpr auto kSiege = seconds(12);

// Slow clients: each holds a connection that sends a request line, then one header byte
// per second. When the server closes one (its request deadline), it reconnects.
class Tricklers {
 public:
  explicit Tricklers(int port) : port_(port) {}
  void run(const std::atomic<bool>& stop) {
    // Two client addresses, so the per-client cap (default 256) is not what limits them.
    const char* from[] = {"127.0.0.2", "127.0.0.3"};
    std::vector<std::unique_ptr<RawConnection>> conns(kTricklers);
    const auto open = [&](int i) {
      conns[i] = std::make_unique<RawConnection>(port_, from[i % 2]);
      conns[i]->send_all("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      ++connects;
    };
    for (int i = 0; i < kTricklers; ++i) open(i);
    while (!stop) {
      const auto round = Clock::now();
      for (int i = 0; i < kTricklers && !stop; ++i) {
        pollfd p{conns[i]->fd(), POLLIN, 0};
        char c = 0;
        const bool closed = (poll(&p, 1, 0) > 0 && recv(conns[i]->fd(), &c, 1, MSG_DONTWAIT) <= 0) ||
                            send(conns[i]->fd(), "z", 1, MSG_NOSIGNAL) < 0;
        if (closed) {
          ++dropped;
          open(i);
        }
      }
      std::this_thread::sleep_until(round + seconds(1));
    }
  }
  std::atomic<int> connects{0}, dropped{0};

 private:
  int port_;
};

// One client sending endless header lines; each connection must end in a 431.
void flood(int port, const std::atomic<bool>& stop, std::atomic<int>& refused_431, std::atomic<int>& other) {
  std::string lines;
  for (int i = 0; i < 2000; ++i) lines += "X-Flood-" + std::to_string(i) + ": vvvvvvvvvvvvvvvv\r\n";
  while (!stop) {
    RawConnection conn(port, "127.0.0.4");
    std::string response;
    std::thread reader([&] { response = conn.read_until_close(seconds(10), 4096); });
    conn.send_all("GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200 && conn.send_all(lines); ++i) {
    }
    reader.join();
    (raw_status(response) == 431 ? refused_431 : other)++;
  }
}

struct SiegeResult {
  int completed = 0, failed = 0;
  std::string first_failure;
  int health_checks = 0, health_failures = 0;
  double health_max_s = 0;
  long threads_peak = 0, rss_peak = 0;
  int slow_connects = 0, slow_dropped = 0;
  int refused_431 = 0, flood_other = 0;
};

// Runs the attack and the normal clients together for `duration`.
SiegeResult siege(const ServeProcess& s, std::chrono::seconds duration) {
  SiegeResult out;
  std::atomic<bool> stop{false};
  Tricklers tricklers(s.port());
  std::atomic<int> refused_431{0}, flood_other{0};
  std::thread trickle_thread([&] { tricklers.run(stop); });
  std::thread flood_thread([&] { flood(s.port(), stop, refused_431, flood_other); });

  // /health every 100 ms from the main address.
  std::thread health_thread([&] {
    while (!stop) {
      const auto [status, took] = timed_get(s.port(), "/health", seconds(5));
      ++out.health_checks;
      if (status != 200 || took > seconds(1)) ++out.health_failures;
      out.health_max_s = std::max(out.health_max_s, took.count());
      out.threads_peak = std::max(out.threads_peak, s.threads());
      out.rss_peak = std::max(out.rss_peak, s.rss_kb());
      std::this_thread::sleep_for(milliseconds(100));
    }
  });

  // 16 streaming clients, one request after another until the siege ends.
  std::atomic<int> completed{0}, failed{0};
  std::mutex mu;
  std::vector<std::thread> streamers;
  const auto end = Clock::now() + duration;
  for (int c = 0; c < kStreamers; ++c) {
    streamers.emplace_back([&, c] {
      auto cli = s.client(30);
      for (int r = 0; Clock::now() < end; ++r) {
        const int n = 16 + 8 * ((c + r) % 4);
        const json body = {{"prompt", "Lily and Ben went to the park."},
                           {"max_tokens", n},
                           {"ignore_eos", true},
                           {"seed", c * 1000 + r},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
        const serve::StreamResult res = serve::post_stream(cli, "/v1/completions", body.dump());
        const json usage = res.usage();
        if (res.status == 200 && res.done && usage.is_object() && usage["completion_tokens"] == n) {
          ++completed;
        } else {
          ++failed;
          std::lock_guard lock(mu);
          if (out.first_failure.empty())
            out.first_failure = std::to_string(res.status) + " " + res.transport_error + " " + res.body.substr(0, 300);
        }
      }
    });
  }
  for (auto& t : streamers) t.join();
  stop = true;
  health_thread.join();
  flood_thread.join();
  trickle_thread.join();
  out.completed = completed;
  out.failed = failed;
  out.slow_connects = tricklers.connects;
  out.slow_dropped = tricklers.dropped;
  out.refused_431 = refused_431;
  out.flood_other = flood_other;
  return out;
}

// Every connection of a siege closes (the tricklers' at their deadline at the latest).
void wait_for_connections_to_close(const ServeProcess& s) {
  for (int i = 0; i < 100 && s.metric("h2o_connections_open") > 1; ++i) std::this_thread::sleep_for(milliseconds(100));
}

TEST(ServeSiege, SlowAndFloodingClientsDoNotStopStreamingOrHealth) {
  ServeProcess s({"--parallel", "16", "--read-timeout", "3", "--max-connections", "1024"});
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  // A short first siege brings allocator arenas, buffers and the engine to their working
  // size; the second is measured against the baseline taken between them.
  const SiegeResult warm = siege(s, seconds(4));
  EXPECT_EQ(warm.failed, 0) << warm.first_failure;
  wait_for_connections_to_close(s);
  const long rss_before = s.rss_kb();
  const long threads_before = s.threads();

  const SiegeResult r = siege(s, kSiege);
  wait_for_connections_to_close(s);
  const double open_after = s.metric("h2o_connections_open");
  const long threads_after = s.threads();
  const long rss_after = s.rss_kb();

  EXPECT_EQ(r.failed, 0) << r.first_failure;
  EXPECT_GT(r.completed, kStreamers * 4);
  EXPECT_EQ(r.health_failures, 0) << "of " << r.health_checks << " health checks, worst " << r.health_max_s << " s";
  EXPECT_LT(r.health_max_s, 1.0);
  EXPECT_GT(r.refused_431, 0);
  EXPECT_EQ(r.flood_other, 0);
  EXPECT_GE(r.slow_dropped, kTricklers) << "slow clients must be dropped at their deadline";
  EXPECT_LE(open_after, 1);  // the /metrics request itself
  EXPECT_EQ(threads_after, threads_before);
#if !H2O_UNDER_ASAN
  EXPECT_LT(rss_after - rss_before, 4 * 1024) << "RSS " << rss_before << " -> " << rss_after << " KiB";
#endif

  const std::string figures = fmt::format(
      "siege {} s: {} streamed requests completed, {} failed; /health {} checks, max {:.1f} ms; {} slow connections "
      "opened, {} dropped at their deadline; {} header floods answered 431; threads {} -> peak {} -> {}; RSS {} -> "
      "peak {} -> {} KiB",
      kSiege.count(), r.completed, r.failed, r.health_checks, r.health_max_s * 1e3, r.slow_connects, r.slow_dropped,
      r.refused_431, threads_before, r.threads_peak, threads_after, rss_before, r.rss_peak, rss_after);
  std::printf("%s\n", figures.c_str());
  RecordProperty("figures", figures);
  EXPECT_EQ(s.stop(), 0) << s.stderr_text();
}

}  // namespace
}  // namespace h2o::test
