#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace h2o::serve {

namespace {
// Seconds: 1 ms .. 2 min, roughly x2.5 apart (token latencies to long generations).
std::vector<double> time_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}
}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  out +=
      fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative, name, sum_, name, count_);
}

Metrics::Metrics() : latency_(time_buckets()), ttft_(time_buckets()) {}

void Metrics::count_request(const std::string& endpoint, int code) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, code}];
}

void Metrics::add_tokens(int prompt, int generated) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(std::max(prompt, 0));
  generated_tokens_ += static_cast<uint64_t>(std::max(generated, 0));
}

void Metrics::observe_latency(double seconds) {
  std::lock_guard lock(mu_);
  latency_.observe(seconds);
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::count_connection_event(const std::string& event) {
  std::lock_guard lock(mu_);
  ++connection_events_[event];
}

std::string Metrics::render(const SchedulerStats& s, int in_flight, int connections_open) const {
  std::lock_guard lock(mu_);
  std::string out;
  out += "# HELP h2o_requests_total HTTP requests by endpoint and status code (499: client disconnected)\n";
  out += "# TYPE h2o_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("h2o_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
  auto metric = [&out](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  metric("h2o_prompt_tokens_total", "counter", "Prompt tokens of accepted completion requests", prompt_tokens_);
  metric("h2o_generated_tokens_total", "counter", "Generated tokens delivered to clients", generated_tokens_);
  metric("h2o_requests_in_flight", "gauge", "Completion requests being served", in_flight);
  metric("h2o_queue_depth", "gauge", "Requests waiting for a sequence slot", s.queued);
  metric("h2o_batch_size", "gauge", "Sequences in the most recent decoding step", s.last_batch_rows);
  metric("h2o_sequences", "gauge", "Sequences in the engine (prefilling or decoding)", s.engine.sequences);
  metric("h2o_kv_bytes", "gauge", "KV cache bytes held by live sequences", s.engine.kv_bytes);
  metric("h2o_engine_steps_total", "counter", "Batched forward steps run", s.engine.steps);
  metric("h2o_engine_cancelled_total", "counter", "Sequences cancelled (client gone, stop string, shutdown)",
         s.cancelled);
  metric("h2o_connections_open", "gauge", "Client connections held", connections_open);
  out += "# HELP h2o_connection_events_total Connections refused over the limits, and read/write deadlines missed\n";
  out += "# TYPE h2o_connection_events_total counter\n";
  for (const auto& [event, n] : connection_events_)
    out += fmt::format("h2o_connection_events_total{{event=\"{}\"}} {}\n", event, n);
  latency_.render(out, "h2o_request_duration_seconds", "Completion request latency, arrival to the last token sent");
  ttft_.render(out, "h2o_time_to_first_token_seconds", "Arrival to the first generated token");
  return out;
}

}  // namespace h2o::serve
