#include "bench/bench.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <span>

#include "common/check.h"

namespace h2o {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Greedy choice; ties go to the lowest id.
int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Bytes of keys and values one decode step attends to: every live slot of every (layer,
// KV head) plus the step's own token, as float keys and values of head_dim each.
uint64_t kv_read_bytes(const Session& s) {
  const ModelConfig& c = s.model().config();
  uint64_t slots = 0;
  for (int l = 0; l < c.n_layers; ++l) slots += static_cast<uint64_t>(s.kv_cache().n_slots(l)) + 1;
  return slots * static_cast<uint64_t>(c.kv_dim()) * 2 * sizeof(float);
}

uint64_t weight_bytes_per_token(const ModelWeights& w) {
  const uint64_t all = w.weight_bytes();
  // An untied embedding table is read one row per token; a tied one is read whole as the output.
  const Matrix& embd = w.mat(ModelRole::TokenEmbd);
  if (w.mat(ModelRole::Output).data == embd.data) return all;
  return all - embd.bytes() + embd.row_bytes;
}

struct RepTimes {
  double prefill_tps = 0, decode_tps = 0, ttft_ms = 0, kv_read = 0;
  uint64_t kv_bytes = 0, kv_bytes_peak = 0;
};

RepTimes run_once(const std::shared_ptr<const Model>& model, const SessionOptions& so,
                  const std::vector<int32_t>& prompt, int n_gen) {
  Session s(model, so);  // allocation outside the timed region
  RepTimes r;
  const auto t0 = Clock::now();
  std::span<const float> logits = s.feed(prompt);
  const auto t1 = Clock::now();
  int32_t tok = argmax(logits);
  const auto t2 = Clock::now();
  uint64_t kv_read = 0;
  for (int i = 0; i < n_gen; ++i) {
    kv_read += kv_read_bytes(s);
    logits = s.feed(std::span(&tok, 1));
    tok = argmax(logits);
  }
  const auto t3 = Clock::now();
  r.prefill_tps = static_cast<double>(prompt.size()) / seconds(t0, t1);
  r.ttft_ms = seconds(t0, t2) * 1e3;
  if (n_gen > 0) {
    r.decode_tps = n_gen / seconds(t2, t3);
    r.kv_read = static_cast<double>(kv_read) / n_gen;
  }
  r.kv_bytes = s.kv_bytes();
  r.kv_bytes_peak = s.kv_bytes_peak();
  return r;
}

std::string mib(double bytes) { return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0)); }

}  // namespace

Spread Spread::of(std::vector<double> values) {
  Spread s;
  s.values = values;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.median = n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  s.min = values.front();
  s.max = values.back();
  return s;
}

uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  }
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) == 0) return static_cast<uint64_t>(u.ru_maxrss) * 1024;  // KiB on Linux
  return 0;
}

BenchResult run_bench(std::shared_ptr<const Model> model, const BenchOptions& opts, const BenchProgress& progress) {
  const ModelConfig& c = model->config();
  if (opts.n_prompt < 1) fail("--n-prompt: must be at least 1, got {}", opts.n_prompt);
  if (opts.n_gen < 0) fail("--n-gen: must be at least 0, got {}", opts.n_gen);
  if (opts.reps < 1) fail("--reps: must be at least 1, got {}", opts.reps);
  if (opts.warmup < 0) fail("--warmup: must be at least 0, got {}", opts.warmup);
  if (opts.n_prompt > c.context_length)
    fail("--n-prompt: {} tokens exceed the model's context length {}", opts.n_prompt, c.context_length);

  BenchResult res;
  res.model_path = model->path();
  res.model_description = model->describe();
  res.context_length = c.context_length;
  res.threads = opts.session.threads;
  res.n_prompt = opts.n_prompt;
  res.n_gen_requested = opts.n_gen;
  res.n_gen = std::min(opts.n_gen, c.context_length - opts.n_prompt);
  res.reps = opts.reps;
  res.warmup = opts.warmup;
  res.seed = opts.seed;
  res.weight_bytes = model->weights().weight_bytes();
  res.weight_bytes_per_token = weight_bytes_per_token(model->weights());

  SessionOptions so = opts.session;
  so.expected_length = opts.n_prompt + res.n_gen;
  res.kv = resolve_kv(so.kv, so.expected_length);  // throws for bad settings before any work
  res.kv_description = so.kv.describe();

  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  std::vector<int32_t> prompt(static_cast<size_t>(opts.n_prompt));
  for (auto& t : prompt) t = pick(rng);

  for (int w = 0; w < opts.warmup; ++w) {
    if (progress) progress(w - opts.warmup, opts.reps);
    run_once(model, so, prompt, res.n_gen);
  }
  std::vector<double> prefill, decode, ttft, kv_read, gbs;
  for (int r = 0; r < opts.reps; ++r) {
    if (progress) progress(r, opts.reps);
    const RepTimes t = run_once(model, so, prompt, res.n_gen);
    prefill.push_back(t.prefill_tps);
    ttft.push_back(t.ttft_ms);
    if (res.n_gen > 0) {
      decode.push_back(t.decode_tps);
      kv_read.push_back(t.kv_read);
      gbs.push_back((static_cast<double>(res.weight_bytes_per_token) + t.kv_read) * t.decode_tps / 1e9);
    }
    res.kv_bytes = t.kv_bytes;
    res.kv_bytes_peak = std::max(res.kv_bytes_peak, t.kv_bytes_peak);
  }
  if (progress) progress(opts.reps, opts.reps);
  res.prefill_tokens_per_s = Spread::of(prefill);
  res.decode_tokens_per_s = Spread::of(decode);
  res.ttft_ms = Spread::of(ttft);
  res.kv_read_bytes_per_token = Spread::of(kv_read);
  res.decode_gb_per_s = Spread::of(gbs);
  res.peak_rss_bytes = peak_rss_bytes();
  return res;
}

std::string bench_to_text(const BenchResult& r, const BandwidthResult* bw) {
  std::string s;
  s += fmt::format("model    {}\n         {}\n", r.model_path, r.model_description);
  s += fmt::format("setup    {} threads, prompt {} tok, decode {} tok", r.threads, r.n_prompt, r.n_gen);
  if (r.n_gen < r.n_gen_requested)
    s += fmt::format(" (capped from {}: context {})", r.n_gen_requested, r.context_length);
  s += fmt::format(", {} reps", r.reps);
  if (r.warmup > 0) s += fmt::format(" after {} warm-up", r.warmup);
  s += fmt::format(", kv {}\n", r.kv_description);
  s += fmt::format("weights  {} stored, {} read per decode token\n\n", mib(static_cast<double>(r.weight_bytes)),
                   mib(static_cast<double>(r.weight_bytes_per_token)));
  s += fmt::format("{:<28} {:>12} {:>12} {:>12}\n", "metric", "median", "min", "max");
  const auto row = [&](const char* name, const Spread& sp, double scale, int decimals) {
    if (sp.empty()) {
      s += fmt::format("{:<28} {:>12} {:>12} {:>12}\n", name, "-", "-", "-");
      return;
    }
    s += fmt::format("{:<28} {:>12.{}f} {:>12.{}f} {:>12.{}f}\n", name, sp.median * scale, decimals, sp.min * scale,
                     decimals, sp.max * scale, decimals);
  };
  row("prefill tok/s", r.prefill_tokens_per_s, 1.0, 2);
  row("decode tok/s", r.decode_tokens_per_s, 1.0, 2);
  row("time to first token ms", r.ttft_ms, 1.0, 1);
  row("KV read per token MiB", r.kv_read_bytes_per_token, 1.0 / (1024.0 * 1024.0), 3);
  row("decode bandwidth GB/s", r.decode_gb_per_s, 1.0, 3);
  if (bw != nullptr && bw->triad_gb_per_s() > 0 && !r.decode_gb_per_s.empty()) {
    row("  % of triad bandwidth", r.decode_gb_per_s, 100.0 / bw->triad_gb_per_s(), 1);
  }
  s += fmt::format("\nKV bytes {} at the end, {} peak ({} / {})\n", r.kv_bytes, r.kv_bytes_peak,
                   mib(static_cast<double>(r.kv_bytes)), mib(static_cast<double>(r.kv_bytes_peak)));
  s += fmt::format("peak RSS {} (weights mapped in included)\n", mib(static_cast<double>(r.peak_rss_bytes)));
  if (bw != nullptr) s += "\n" + bandwidth_to_text(*bw);
  return s;
}

nlohmann::json bench_to_json(const BenchResult& r, const BandwidthResult* bw) {
  const auto spread = [](const Spread& sp) -> nlohmann::json {
    if (sp.empty()) return nullptr;
    return {{"median", sp.median}, {"min", sp.min}, {"max", sp.max}, {"values", sp.values}};
  };
  nlohmann::json j = {
      {"model", r.model_path},
      {"model_description", r.model_description},
      {"context_length", r.context_length},
      {"threads", r.threads},
      {"n_prompt", r.n_prompt},
      {"n_gen", r.n_gen},
      {"n_gen_requested", r.n_gen_requested},
      {"n_gen_capped", r.n_gen < r.n_gen_requested},
      {"reps", r.reps},
      {"warmup", r.warmup},
      {"seed", r.seed},
      {"kv", {{"policy", r.kv.policy}, {"budget", r.kv.budget}, {"recent", r.kv.recent}, {"sinks", r.kv.sinks}}},
      {"kv_settings", r.kv_description},
      {"weight_bytes", r.weight_bytes},
      {"weight_bytes_per_token", r.weight_bytes_per_token},
      {"prefill_tokens_per_s", spread(r.prefill_tokens_per_s)},
      {"decode_tokens_per_s", spread(r.decode_tokens_per_s)},
      {"ttft_ms", spread(r.ttft_ms)},
      {"kv_read_bytes_per_token", spread(r.kv_read_bytes_per_token)},
      {"decode_gb_per_s", spread(r.decode_gb_per_s)},
      {"kv_bytes", r.kv_bytes},
      {"kv_bytes_peak", r.kv_bytes_peak},
      {"peak_rss_bytes", r.peak_rss_bytes},
  };
  if (bw != nullptr) {
    j["bandwidth"] = bandwidth_to_json(*bw);
    const double triad = bw->triad_gb_per_s();
    j["decode_fraction_of_triad"] = triad > 0 && !r.decode_gb_per_s.empty()
                                        ? nlohmann::json(r.decode_gb_per_s.median / triad)
                                        : nlohmann::json(nullptr);
  }
  return j;
}

}  // namespace h2o
