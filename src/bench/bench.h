// Speed and memory of one model under one KV setting (`h2o bench`): prefill and decode
// tokens/s, time to first token, KV bytes, peak RSS, and the decode's effective memory
// bandwidth, over R repetitions (median and min/max). The prompt is seeded random token
// ids; decoding is greedy, one token per forward step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bandwidth.h"
#include "model/model.h"
#include "runtime/session.h"

namespace h2o {

struct BenchOptions {
  int n_prompt = 128;      // prompt tokens, fed as prefill (in steps of the prefill chunk)
  int n_gen = 32;          // single-token decode steps (capped so that prompt + n_gen <= context)
  int reps = 3;            // measured repetitions, each a fresh session
  int warmup = 0;          // unmeasured repetitions first (page in the weights, warm the caches)
  uint64_t seed = 0;       // of the prompt's token ids
  SessionOptions session;  // KV settings and threads; expected_length is set here
};

// Median and range of one metric over the repetitions (empty when not measured).
struct Spread {
  std::vector<double> values;
  double median = 0.0, min = 0.0, max = 0.0;
  static Spread of(std::vector<double> values);
  bool empty() const { return values.empty(); }
};

struct BenchResult {
  std::string model_path;
  std::string model_description;
  int context_length = 0;
  int threads = 1;
  int n_prompt = 0;
  int n_gen = 0;            // decode steps measured
  int n_gen_requested = 0;  // > n_gen when capped by the context length
  int reps = 0;
  int warmup = 0;
  uint64_t seed = 0;
  KvResolved kv;
  std::string kv_description;
  uint64_t weight_bytes = 0;            // all matrices as stored (ModelWeights::weight_bytes)
  uint64_t weight_bytes_per_token = 0;  // read by one decode step: all but the embedding table, one row of it

  Spread prefill_tokens_per_s;
  Spread decode_tokens_per_s;
  Spread ttft_ms;                  // prompt fed and first token chosen
  Spread kv_read_bytes_per_token;  // keys + values of the live slots a decode step attends to, averaged
  Spread decode_gb_per_s;          // (weight_bytes_per_token + kv read) x decode tokens/s
  uint64_t kv_bytes = 0;           // KV cache bytes at the end of the last repetition
  uint64_t kv_bytes_peak = 0;      // largest over the repetitions
  uint64_t peak_rss_bytes = 0;     // process high-water mark after the runs (weights mapped in included)
};

// Called before each repetition (warm-up ones have rep < 0) and once at the end (rep == reps).
using BenchProgress = std::function<void(int rep, int reps)>;

// Throws h2o::Error for n_prompt < 1, n_gen < 0, reps < 1, warmup < 0, a prompt longer
// than the context, or invalid KV settings.
BenchResult run_bench(std::shared_ptr<const Model> model, const BenchOptions& opts, const BenchProgress& progress = {});

// The process's peak resident set in bytes (VmHWM, else getrusage), 0 if unknown.
uint64_t peak_rss_bytes();

// `bw`, if given, is a probe run in the same process: the decode bandwidth is then also
// shown as a fraction of its triad figure.
std::string bench_to_text(const BenchResult& r, const BandwidthResult* bw = nullptr);
nlohmann::json bench_to_json(const BenchResult& r, const BandwidthResult* bw = nullptr);

}  // namespace h2o
