// Throughput under a KV memory cap (`h2o bench --throughput`): how many sequences of a
// given prompt and generation length fit a cap on the sum of their KV caches under a
// policy, and how many tokens per second the batching engine then generates for them.
// This is the H2O paper's headline measurement: a smaller cache per sequence lets more
// sequences share each decoding step (and each step reads less KV per sequence).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/bench.h"
#include "kv/kv_config.h"
#include "model/model.h"

namespace h2o {

struct ThroughputOptions {
  int n_prompt = 2048;              // prompt tokens per sequence (seeded random ids)
  int n_gen = 512;                  // generated tokens per sequence (EOS ignored)
  uint64_t kv_memory = 1ull << 30;  // cap on the sum of the sequences' KV bytes
  int batch = 0;                    // sequences; 0 = the largest number that fits kv_memory
  int max_batch = 256;              // upper limit when fitting
  int threads = 1;
  int max_step_tokens = 512;  // prefill tokens per engine step
  KvSettings kv;  // prefill_chunk 0 is replaced by 256 (a whole 2k prompt per sequence would need 2k extra slots)
  uint64_t seed = 0;
};

struct ThroughputResult {
  KvResolved kv;
  std::string kv_description;
  int n_prompt = 0, n_gen = 0, threads = 1, prefill_chunk = 0;
  int batch = 0;
  bool fitted = false;  // batch chosen to fit the cap
  uint64_t kv_memory = 0;
  uint64_t kv_bytes_per_sequence = 0;  // planned: one decoding sequence's cache (budget + 1 slots, or all)
  uint64_t kv_bytes_planned = 0;       // planned peak of the batch (KvPlan::batch_bytes)
  uint64_t kv_bytes_scratch = 0;       // of which the prefill chunk scratch (KvPlan::scratch_bytes)
  uint64_t kv_bytes_peak = 0;          // measured: largest sum over the live caches during any step
  uint64_t peak_rss_bytes = 0;         // process high-water mark during the run (reset before it where possible)
  uint64_t weight_bytes = 0;
  double seconds = 0.0;  // wall time from the first step to the last sequence's end
  uint64_t generated_tokens = 0;
  double tokens_per_s = 0.0;         // generated tokens / seconds (prefill time included)
  double decode_step_ms = 0.0;       // median step time while every sequence decodes (no prefill in the step)
  double decode_tokens_per_s = 0.0;  // batch / decode_step_ms: the steady-state rate
  Spread latency_s;                  // per sequence: start of the run to its last token
  Spread ttft_s;                     // per sequence: start of the run to its first token
  // `--rounds` > 1: every round's tokens/s in round order; the other fields are those of the
  // round with the median tokens/s (the lower of the two middle ones for an even count).
  std::vector<double> round_tokens_per_s;
};

// The result of several rounds of one setting: the median round's, with every round's
// tokens/s beside it (throws for an empty list).
ThroughputResult median_round(const std::vector<ThroughputResult>& rounds);

// How much KV memory a batch needs: admission counts what is kept. A decoding bounded
// cache holds B + 1 slots (a decoding step appends one); a prefill step of T tokens grows
// it to B + T, kept while its prompt is fed in chunks of consecutive steps (BatchEngine
// shrinks it back after the last chunk, and at the start of any step that does not take
// its next chunk), and one engine step prefills at most max(max_step_tokens, chunk) tokens
// over all its sequences. So n sequences need n x (B + 1) slots plus the chunk scratch of
// the sequences prefilling in one step: min(max(max_step_tokens, chunk), n x chunk) - 1
// slots (the first prefilling sequence's extra slot is its own "+ 1"). `full` holds the
// whole sequence in 16-slot pages and needs no scratch.
struct KvPlan {
  uint64_t steady = 0;                         // bytes per sequence between steps (B + 1 slots, or the whole sequence)
  uint64_t slot_bytes = 0;                     // bounded: bytes of one more slot per (layer, KV head), over all of them
  int step_tokens = 0;                         // bounded: prefill tokens one step holds at most
  int chunk = 0;                               // bounded: prefill tokens per step of one sequence
  uint64_t scratch_bytes(int batch) const;     // the chunk scratch at the peak of `batch` sequences
  uint64_t batch_bytes(int batch) const;       // peak for `batch` sequences
  int fit(uint64_t cap, int max_batch) const;  // largest batch within cap (0 if none)
};
KvPlan plan_kv(const ModelConfig& cfg, const KvResolved& kv, int n_prompt, int n_gen, int prefill_chunk,
               int max_step_tokens);

// The settings a run uses: a prefill chunk of 0 (whole prompt) becomes 256.
KvSettings throughput_kv(const KvSettings& kv);
// plan_kv() for a run's options (throws for invalid KV settings).
KvPlan plan_kv(const ModelConfig& cfg, const ThroughputOptions& opts);

using ThroughputProgress = std::function<void(uint64_t done_tokens, uint64_t total_tokens)>;

// Throws h2o::Error for bad sizes, a sequence longer than the context, invalid KV
// settings, or a cap too small for one sequence.
ThroughputResult run_throughput(std::shared_ptr<const Model> model, const ThroughputOptions& opts,
                                const ThroughputProgress& progress = {});

// Resets the process's peak-RSS mark (Linux /proc/self/clear_refs); false if unsupported.
bool reset_peak_rss();

nlohmann::json throughput_to_json(const ThroughputResult& r);
// A side-by-side table of results (the first is the baseline for the ratio column).
std::string throughput_to_text(const std::vector<ThroughputResult>& results);

// "4GiB", "512MiB", "1.5G", "1000000" (bytes) -> bytes. Throws h2o::Error naming `flag`.
uint64_t parse_byte_size(const std::string& text, const std::string& flag);

}  // namespace h2o
