// Server metrics in Prometheus' text exposition format (GET /metrics).
//
//   h2o_requests_total{endpoint,code}        counter; code 499 = the client went away
//   h2o_prompt_tokens_total                  counter, prompt tokens of accepted requests
//   h2o_generated_tokens_total               counter, tokens delivered to clients
//   h2o_requests_in_flight                   gauge, completion requests being served
//   h2o_queue_depth                          gauge, requests waiting for a sequence slot
//   h2o_batch_size                           gauge, sequences in the most recent step
//   h2o_kv_bytes                             gauge, KV cache bytes of live sequences
//   h2o_engine_steps_total                   counter
//   h2o_request_duration_seconds             histogram, arrival -> last byte queued
//   h2o_time_to_first_token_seconds          histogram, arrival -> first token
//   h2o_connections_open                     gauge, client connections held
//   h2o_connection_events_total{event}       counter: refused_total, refused_client (over the
//                                            connection limits), read_timeout, write_timeout,
//                                            accept_error
//
// Thread-safe: every method takes the one mutex (a few increments per request).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/batch_scheduler.h"

namespace h2o::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Lines for `name` (cumulative _bucket{le=...}, _sum, _count).
  void render(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int code);
  void add_tokens(int prompt, int generated);
  void observe_latency(double seconds);
  void observe_ttft(double seconds);
  void count_connection_event(const std::string& event);
  std::string render(const SchedulerStats& sched, int in_flight, int connections_open) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> connection_events_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram latency_, ttft_;
};

}  // namespace h2o::serve
