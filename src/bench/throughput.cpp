#include "bench/throughput.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>

#include "common/check.h"
#include "kv/kv_cache.h"
#include "runtime/batch_engine.h"

namespace h2o {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string gib(double bytes) { return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024.0 * 1024.0)); }
std::string mib(double bytes) { return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0)); }

constexpr int kDefaultChunk = 256;

}  // namespace

uint64_t parse_byte_size(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail("{}: expected a size like 4GiB or 512MiB, got '{}'", flag, text);
  }
  std::string unit = text.substr(used);
  double mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "KiB" || unit == "k") {
    mult = 1024.0;
  } else if (unit == "M" || unit == "MiB") {
    mult = 1024.0 * 1024.0;
  } else if (unit == "G" || unit == "GiB") {
    mult = 1024.0 * 1024.0 * 1024.0;
  } else if (unit == "KB") {
    mult = 1e3;
  } else if (unit == "MB") {
    mult = 1e6;
  } else if (unit == "GB") {
    mult = 1e9;
  } else {
    fail("{}: unknown unit '{}' in '{}' (use B, KiB, MiB, GiB, KB, MB, GB)", flag, unit, text);
  }
  const double bytes = v * mult;
  if (!std::isfinite(bytes) || bytes < 1 || bytes > 1e15) fail("{}: size out of range: '{}'", flag, text);
  return static_cast<uint64_t>(bytes);
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";  // "5": reset the peak resident set size (Linux >= 4.0)
  return static_cast<bool>(f.flush());
}

uint64_t KvPlan::scratch_bytes(int batch) const {
  if (slot_bytes == 0 || batch <= 0) return 0;
  const int64_t tokens = std::min<int64_t>(step_tokens, static_cast<int64_t>(batch) * chunk);
  return static_cast<uint64_t>(std::max<int64_t>(tokens - 1, 0)) * slot_bytes;
}

uint64_t KvPlan::batch_bytes(int batch) const {
  const uint64_t n = static_cast<uint64_t>(std::max(batch, 0));
  return n * steady + scratch_bytes(batch);
}

int KvPlan::fit(uint64_t cap, int max_batch) const {
  int best = 0;
  for (int b = 1; b <= max_batch && batch_bytes(b) <= cap; ++b) best = b;
  return best;
}

KvPlan plan_kv(const ModelConfig& cfg, const KvResolved& kv, int n_prompt, int n_gen, int prefill_chunk,
               int max_step_tokens) {
  KvPlan p;
  const AttentionShape shape = cfg.attention_shape();
  const int len = std::min(cfg.context_length, n_prompt + n_gen);
  if (kv.budget > 0) {
    const int steady_slots = std::min(kv.budget + 1, cfg.context_length);
    p.chunk = prefill_chunk > 0 ? std::min(prefill_chunk, n_prompt) : n_prompt;
    p.step_tokens = std::max(max_step_tokens, p.chunk);
    p.steady = KvCache::bytes_for(shape, kv, steady_slots);
    p.slot_bytes = KvCache::bytes_for(shape, kv, steady_slots + 1) - p.steady;
  } else {
    const int cap = (len + KvCache::kPageSlots - 1) / KvCache::kPageSlots * KvCache::kPageSlots;
    p.steady = KvCache::bytes_for(shape, kv, cap);
  }
  return p;
}

KvSettings throughput_kv(const KvSettings& kv) {
  KvSettings k = kv;
  if (k.prefill_chunk == 0) k.prefill_chunk = kDefaultChunk;
  return k;
}

KvPlan plan_kv(const ModelConfig& cfg, const ThroughputOptions& o) {
  const KvSettings k = throughput_kv(o.kv);
  return plan_kv(cfg, resolve_kv(k, o.n_prompt + o.n_gen), o.n_prompt, o.n_gen, k.prefill_chunk, o.max_step_tokens);
}

ThroughputResult run_throughput(std::shared_ptr<const Model> model, const ThroughputOptions& opts,
                                const ThroughputProgress& progress) {
  const ModelConfig& c = model->config();
  if (opts.n_prompt < 1) fail("--n-prompt: must be at least 1, got {}", opts.n_prompt);
  if (opts.n_gen < 1) fail("--n-gen: must be at least 1 for a throughput run, got {}", opts.n_gen);
  if (opts.n_prompt + opts.n_gen > c.context_length)
    fail("prompt {} + generation {} tokens exceed the model's context length {}", opts.n_prompt, opts.n_gen,
         c.context_length);
  if (opts.batch < 0) fail("--batch: must be >= 0, got {}", opts.batch);

  ThroughputResult res;
  const KvSettings kvs = throughput_kv(opts.kv);
  res.kv = resolve_kv(kvs, opts.n_prompt + opts.n_gen);
  res.kv_description = kvs.describe();
  res.n_prompt = opts.n_prompt;
  res.n_gen = opts.n_gen;
  res.threads = opts.threads;
  res.prefill_chunk = kvs.prefill_chunk;
  res.kv_memory = opts.kv_memory;
  res.weight_bytes = model->weights().weight_bytes();
  const KvPlan plan = plan_kv(c, res.kv, opts.n_prompt, opts.n_gen, kvs.prefill_chunk, opts.max_step_tokens);
  res.kv_bytes_per_sequence = plan.steady;
  if (opts.batch > 0) {
    res.batch = opts.batch;
  } else {
    res.batch = plan.fit(opts.kv_memory, opts.max_batch);
    if (res.batch < 1)
      fail("--kv-memory {}: one sequence needs {} under {}", mib(static_cast<double>(opts.kv_memory)),
           mib(static_cast<double>(plan.batch_bytes(1))), res.kv_description);
    res.fitted = true;
  }
  res.kv_bytes_planned = plan.batch_bytes(res.batch);
  res.kv_bytes_scratch = plan.scratch_bytes(res.batch);

  BatchOptions bo;
  bo.threads = opts.threads;
  bo.max_sequences = res.batch;
  bo.max_step_tokens = opts.max_step_tokens;
  BatchEngine engine(model, bo);

  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  std::vector<double> start_to_first(static_cast<size_t>(res.batch), 0.0),
      start_to_end(static_cast<size_t>(res.batch), 0.0);
  std::vector<uint64_t> ids;
  for (int i = 0; i < res.batch; ++i) {
    SequenceRequest r;
    r.prompt.resize(static_cast<size_t>(opts.n_prompt));
    for (auto& t : r.prompt) t = pick(rng);
    r.max_tokens = opts.n_gen;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    r.kv = kvs;
    ids.push_back(engine.add(std::move(r)));
  }
  reset_peak_rss();
  const uint64_t total = static_cast<uint64_t>(res.batch) * static_cast<uint64_t>(opts.n_prompt + opts.n_gen);
  std::vector<double> decode_steps;
  const auto t0 = Clock::now();
  while (!engine.empty()) {
    const BatchStats before = engine.stats();
    const auto s0 = Clock::now();
    const std::vector<SequenceEvent> events = engine.step();
    const auto s1 = Clock::now();
    // A pure decode step: every sequence in the engine decoded one token in it.
    if (before.decoding == before.sequences && before.sequences == res.batch) decode_steps.push_back(seconds(s0, s1));
    for (const SequenceEvent& e : events) {
      const size_t i = static_cast<size_t>(e.id - ids.front());
      if (e.token >= 0) {
        ++res.generated_tokens;
        if (e.n_generated == 1) start_to_first[i] = seconds(t0, s1);
      }
      if (e.finished) start_to_end[i] = seconds(t0, s1);
    }
    res.kv_bytes_peak = std::max<uint64_t>(res.kv_bytes_peak, engine.stats().kv_bytes_in_step);
    if (progress) {
      const BatchStats after = engine.stats();
      progress(after.prompt_tokens + after.generated_tokens, total);
    }
  }
  res.seconds = seconds(t0, Clock::now());
  res.peak_rss_bytes = peak_rss_bytes();
  res.tokens_per_s = res.seconds > 0 ? static_cast<double>(res.generated_tokens) / res.seconds : 0.0;
  if (!decode_steps.empty()) {
    res.decode_step_ms = Spread::of(decode_steps).median * 1e3;
    res.decode_tokens_per_s = static_cast<double>(res.batch) / (res.decode_step_ms / 1e3);
  }
  res.latency_s = Spread::of(start_to_end);
  res.ttft_s = Spread::of(start_to_first);
  return res;
}

ThroughputResult median_round(const std::vector<ThroughputResult>& rounds) {
  if (rounds.empty()) fail("internal: no throughput rounds");
  std::vector<size_t> by_speed(rounds.size());
  for (size_t i = 0; i < by_speed.size(); ++i) by_speed[i] = i;
  std::stable_sort(by_speed.begin(), by_speed.end(),
                   [&](size_t a, size_t b) { return rounds[a].tokens_per_s < rounds[b].tokens_per_s; });
  ThroughputResult r = rounds[by_speed[(by_speed.size() - 1) / 2]];
  r.round_tokens_per_s.clear();
  if (rounds.size() > 1) {
    for (const ThroughputResult& x : rounds) r.round_tokens_per_s.push_back(x.tokens_per_s);
  }
  return r;
}

nlohmann::json throughput_to_json(const ThroughputResult& r) {
  const auto spread = [](const Spread& s) {
    return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}};
  };
  nlohmann::json j = {{"kv",
                       {{"policy", r.kv.policy},
                        {"budget", r.kv.budget},
                        {"recent", r.kv.recent},
                        {"sinks", r.kv.sinks},
                        {"type", kv_type_name(r.kv.type)},
                        {"positions", kv_positions_name(r.kv.positions)}}},
                      {"kv_description", r.kv_description},
                      {"n_prompt", r.n_prompt},
                      {"n_gen", r.n_gen},
                      {"threads", r.threads},
                      {"prefill_chunk", r.prefill_chunk},
                      {"batch", r.batch},
                      {"batch_fitted_to_cap", r.fitted},
                      {"kv_memory_cap", r.kv_memory},
                      {"kv_bytes_per_sequence", r.kv_bytes_per_sequence},
                      {"kv_bytes_planned", r.kv_bytes_planned},
                      {"kv_bytes_scratch", r.kv_bytes_scratch},
                      {"kv_bytes_peak", r.kv_bytes_peak},
                      {"peak_rss_bytes", r.peak_rss_bytes},
                      {"weight_bytes", r.weight_bytes},
                      {"seconds", r.seconds},
                      {"generated_tokens", r.generated_tokens},
                      {"tokens_per_s", r.tokens_per_s},
                      {"decode_step_ms", r.decode_step_ms},
                      {"decode_tokens_per_s", r.decode_tokens_per_s},
                      {"latency_s", spread(r.latency_s)},
                      {"ttft_s", spread(r.ttft_s)}};
  if (!r.round_tokens_per_s.empty()) {
    j["rounds"] = r.round_tokens_per_s.size();
    j["tokens_per_s_rounds"] = r.round_tokens_per_s;
  }
  return j;
}

std::string throughput_to_text(const std::vector<ThroughputResult>& results) {
  if (results.empty()) return {};
  std::string s;
  const ThroughputResult& base = results.front();
  s += fmt::format("prompt {} tok, generate {} tok per sequence, {} threads, prefill chunk {}, KV cap {}\n\n",
                   base.n_prompt, base.n_gen, base.threads, base.prefill_chunk,
                   gib(static_cast<double>(base.kv_memory)));
  s += fmt::format("{:<34} {:>6} {:>12} {:>12} {:>10} {:>10} {:>11} {:>11} {:>11} {:>8}\n", "kv", "batch", "KV/seq",
                   "KV peak", "tok/s", "step ms", "latency s", "ttft s", "peak RSS", "x base");
  for (const ThroughputResult& r : results) {
    const double ratio = base.tokens_per_s > 0 ? r.tokens_per_s / base.tokens_per_s : 0.0;
    s += fmt::format("{:<34} {:>6} {:>12} {:>12} {:>10.1f} {:>10.2f} {:>11.2f} {:>11.2f} {:>11} {:>8.2f}\n",
                     r.kv_description, r.batch, mib(static_cast<double>(r.kv_bytes_per_sequence)),
                     mib(static_cast<double>(r.kv_bytes_peak)), r.tokens_per_s, r.decode_step_ms, r.latency_s.median,
                     r.ttft_s.median, mib(static_cast<double>(r.peak_rss_bytes)), ratio);
  }
  for (const ThroughputResult& r : results) {
    if (r.round_tokens_per_s.empty()) continue;
    s += fmt::format("{} batch {}: tok/s by round", r.kv_description, r.batch);
    for (double v : r.round_tokens_per_s) s += fmt::format(" {:.1f}", v);
    s += fmt::format(" (the median round above)\n");
  }
  return s;
}

}  // namespace h2o
