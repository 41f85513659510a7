// Load generator for `h2o serve`: C concurrent clients, each sending R streaming
// completion requests one after another, with mixed lengths and KV policies, over
// loopback. Prints requests/s, generated tokens/s, and p50/p99 of latency and time to
// first token (or one JSON object with --json). Exit status 1 if any request failed.
//
//   h2o_serve_load --port 8080 --clients 64 --requests 4 [--max-tokens 16,64,128]
//                  [--policies full,h2o:32,window:32,tova:25%] [--json]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "serve/sse_client.h"

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily and Ben went to the park. They saw a big",
                          "One day, a girl named Sue found a shiny stone in the garden. She"};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generator for h2o serve (loopback)"};
  std::string host = "127.0.0.1", api_key, max_tokens_list = "16,64,128",
              policies_list = "full,h2o:32,window:32,tova:25%";
  int port = 8080, clients = 64, requests = 4;
  bool json_out = false;
  app.add_option("--host", host)->capture_default_str();
  app.add_option("--port", port)->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--requests", requests, "Requests per client")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--max-tokens", max_tokens_list, "max_tokens values, used in turn")->capture_default_str();
  app.add_option("--policies", policies_list, "KV settings used in turn: policy or policy:budget")
      ->capture_default_str();
  app.add_option("--api-key", api_key);
  app.add_flag("--json", json_out, "Print one JSON object");
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> lengths = split(max_tokens_list, ','), policies = split(policies_list, ',');
  if (lengths.empty() || policies.empty()) {
    std::fprintf(stderr, "error: --max-tokens and --policies need at least one value\n");
    return 2;
  }
  std::mutex mu;
  std::vector<double> latency, ttft;
  std::atomic<long> failed{0}, tokens{0};
  std::string first_error;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli(host, port);
      cli.set_read_timeout(120, 0);
      for (int r = 0; r < requests; ++r) {
        const size_t k = static_cast<size_t>(c * requests + r);
        nlohmann::json body = {{"prompt", kPrompts[k % std::size(kPrompts)]},
                               {"max_tokens", std::stoi(lengths[k % lengths.size()])},
                               {"temperature", 0.8},
                               {"seed", k},
                               {"ignore_eos", true},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}}};
        const std::vector<std::string> pol = split(policies[(k / lengths.size()) % policies.size()], ':');
        body["kv_policy"] = pol[0];
        if (pol.size() > 1) body["kv_budget"] = pol[1];
        const h2o::serve::StreamResult res = h2o::serve::post_stream(cli, "/v1/completions", body.dump(), api_key);
        const nlohmann::json usage = res.usage();
        std::lock_guard lock(mu);
        if (res.status != 200 || !res.done || !usage.is_object()) {
          ++failed;
          if (first_error.empty())
            first_error = res.status ? std::to_string(res.status) + " " + res.body.substr(0, 200) : res.transport_error;
          continue;
        }
        latency.push_back(res.total_s);
        if (res.ttft_s >= 0) ttft.push_back(res.ttft_s);
        tokens += usage["completion_tokens"].get<long>();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long total = static_cast<long>(clients) * requests;
  nlohmann::json out = {{"clients", clients},
                        {"requests", total},
                        {"failed", failed.load()},
                        {"wall_s", wall},
                        {"requests_per_s", static_cast<double>(total - failed) / wall},
                        {"generated_tokens", tokens.load()},
                        {"tokens_per_s", static_cast<double>(tokens) / wall},
                        {"latency_p50_s", percentile(latency, 0.5)},
                        {"latency_p99_s", percentile(latency, 0.99)},
                        {"ttft_p50_s", percentile(ttft, 0.5)},
                        {"ttft_p99_s", percentile(ttft, 0.99)}};
  if (json_out) {
    std::puts(out.dump().c_str());
  } else {
    std::printf(
        "%ld requests (%ld failed) from %d clients in %.2f s: %.1f req/s, %.0f generated tok/s\n"
        "latency p50 %.1f ms, p99 %.1f ms; time to first token p50 %.1f ms, p99 %.1f ms\n",
        total, failed.load(), clients, wall, out["requests_per_s"].get<double>(), out["tokens_per_s"].get<double>(),
        1e3 * percentile(latency, 0.5), 1e3 * percentile(latency, 0.99), 1e3 * percentile(ttft, 0.5),
        1e3 * percentile(ttft, 0.99));
  }
  if (!first_error.empty()) std::fprintf(stderr, "first failure: %s\n", first_error.c_str());
  return failed > 0 ? 1 : 0;
}
