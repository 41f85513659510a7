// `h2o bench -m MODEL [-p N] [-n N] [-t N] [--reps R] [kv flags] [--bandwidth] [--json]`:
// prefill/decode speed, time to first token, KV bytes and peak RSS of one model, as a
// table (stdout) or one JSON object; `--bandwidth` adds (or, without -m, is only) a
// STREAM-like memory-bandwidth probe. Progress goes to stderr.
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "bench/bandwidth.h"
#include "bench/bench.h"
#include "cli_options.h"
#include "commands.h"
#include "common/check.h"

namespace h2o::cli {
namespace {

struct BenchFlags {
  std::string model;
  std::string tokenizer;
  KvFlags kv;
  int n_prompt = 128;
  int n_gen = 32;
  int reps = 3;
  int warmup = 0;
  uint64_t seed = 0;
  int threads = 1;
  bool bandwidth = false;
  int bandwidth_mib = 256;
  bool json = false;
};

void run_bench_command(const BenchFlags& f) {
  if (f.model.empty() && !f.bandwidth) fail("-m/--model is required (or --bandwidth alone for the memory probe)");
  std::optional<BenchResult> result;
  if (!f.model.empty()) {
    BenchOptions opts;
    opts.n_prompt = f.n_prompt;
    opts.n_gen = f.n_gen;
    opts.reps = f.reps;
    opts.warmup = f.warmup;
    opts.seed = f.seed;
    opts.session.kv = f.kv.settings();
    opts.session.threads = f.threads;
    auto model = Model::load({f.model, f.tokenizer});
    const int ctx = model->config().context_length;
    if (f.n_prompt <= ctx && f.n_prompt + f.n_gen > ctx) {
      std::fprintf(stderr, "notice: -n %d capped to %d: prompt + decode must fit the context length %d\n", f.n_gen,
                   ctx - f.n_prompt, ctx);
    }
    result = run_bench(model, opts, [](int rep, int reps) {
      if (rep < 0) {
        std::fprintf(stderr, "bench: warm-up\n");
      } else if (rep < reps) {
        std::fprintf(stderr, "bench: repetition %d/%d\n", rep + 1, reps);
      }
    });
  }
  // After the model runs, so that the probe's arrays do not count in their peak RSS.
  std::optional<BandwidthResult> bw;
  if (f.bandwidth) {
    std::fprintf(stderr, "bench: memory bandwidth probe (%d MiB, %d threads)\n", f.bandwidth_mib, f.threads);
    bw = measure_bandwidth({f.threads, static_cast<size_t>(f.bandwidth_mib) << 20, f.reps});
  }
  const BandwidthResult* bwp = bw ? &*bw : nullptr;
  if (f.json) {
    const nlohmann::json j = result ? bench_to_json(*result, bwp) : bandwidth_to_json(*bw);
    std::puts(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fputs((result ? bench_to_text(*result, bwp) : bandwidth_to_text(*bw)).c_str(), stdout);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Measure prefill/decode speed, KV bytes, peak RSS (and memory bandwidth)");
  cmd->add_option("-m,--model", f->model, "Model file: GGUF, or a llama2.c checkpoint (.bin) with --tokenizer");
  cmd->add_option("--tokenizer", f->tokenizer, "llama2.c tokenizer.bin (for llama2.c checkpoints)");
  cmd->add_option("-p,--n-prompt", f->n_prompt, "Prompt tokens (seeded random ids)")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", f->n_gen, "Greedy decode steps (capped so that prompt + n fits the context)")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  cmd->add_option("-r,--reps", f->reps, "Measured repetitions (median, min, max)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Unmeasured repetitions first")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  cmd->add_option("-s,--seed", f->seed, "Seed of the prompt's token ids")->capture_default_str();
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--bandwidth", f->bandwidth, "Also run a STREAM-like memory-bandwidth probe (alone without -m)");
  cmd->add_option("--bandwidth-mib", f->bandwidth_mib, "Total size of the probe's three arrays in MiB")
      ->check(CLI::Range(3, 1 << 16))
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print one JSON object instead of the table");
  cmd->callback([f] { run_bench_command(*f); });
}

}  // namespace h2o::cli
