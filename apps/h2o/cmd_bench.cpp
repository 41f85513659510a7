// `h2o bench -m MODEL [-p N] [-n N] [-t N] [--reps R] [kv flags] [--bandwidth] [--json]`:
// prefill/decode speed, time to first token, KV bytes and peak RSS of one model, as a
// table (stdout) or one JSON object; `--bandwidth` adds (or, without -m, is only) a
// STREAM-like memory-bandwidth probe. Progress goes to stderr.
//
// `h2o bench --throughput -m MODEL -p 2048 -n 512 --kv-memory 4GiB`: batched generation
// under a KV memory cap, `full` (always f32, absolute positions: today's baseline) against
// a bounded policy (default h2o 20%: 10% heavy + 10% recent; with --kv-type and
// --kv-positions) side by side, with the ratio; --batch-sizes sweeps the batch size and
// --plot draws throughput against it.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "bench/bandwidth.h"
#include "bench/bench.h"
#include "bench/throughput.h"
#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "plot/gnuplot.h"
#include "progress.h"

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
  // --throughput
  bool throughput = false;
  std::string kv_memory = "4GiB";
  int batch = 0;
  std::string batch_sizes;
  int max_step_tokens = 512;
  int rounds = 1;
  std::string plot;
  bool no_baseline = false;
};

std::vector<int> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      fail("{}: expected comma-separated integers, got '{}'", flag, text);
    }
    if (used != item.size() || v < 1 || v > 4096)
      fail("{}: each value must be an integer in [1, 4096], got '{}'", flag, item);
    out.push_back(v);
  }
  if (out.empty()) fail("{}: empty list", flag);
  return out;
}

// The two settings compared: full f32 with absolute positions (the baseline), and the
// user's bounded policy (default h2o 20% / 10% recent) in the user's storage type and positions.
std::vector<KvSettings> throughput_policies(const BenchFlags& f) {
  KvSettings full = f.kv.settings();
  KvSettings bounded = full;
  full.policy = "full";
  full.budget.reset();
  full.recent.reset();
  full.type = KvType::F32;
  full.positions = KvPositions::Absolute;
  if (bounded.policy == "full") {
    bounded.policy = "h2o";
    bounded.budget = BudgetSpec::parse("20%", "--kv-budget");
    bounded.recent = BudgetSpec::parse("10%", "--kv-recent");
  }
  if (f.no_baseline) return {bounded};
  return {full, bounded};
}

void run_throughput_command(const BenchFlags& f) {
  if (f.model.empty()) fail("--throughput: -m/--model is required");
  auto model = Model::load({f.model, f.tokenizer});
  ThroughputOptions base;
  base.n_prompt = f.n_prompt;
  base.n_gen = f.n_gen;
  base.kv_memory = parse_byte_size(f.kv_memory, "--kv-memory");
  base.batch = f.batch;
  base.threads = f.threads;
  base.max_step_tokens = f.max_step_tokens;
  base.seed = f.seed;
  const std::vector<int> sizes =
      f.batch_sizes.empty() ? std::vector<int>{f.batch} : parse_int_list(f.batch_sizes, "--batch-sizes");
  std::vector<ThroughputResult> results;
  const std::vector<KvSettings> policies = throughput_policies(f);
  std::vector<ThroughputOptions> settings;
  for (const KvSettings& kv : policies) {
    for (int size : sizes) {
      ThroughputOptions o = base;
      o.kv = kv;
      o.batch = size;
      // In a sweep, sizes past the cap are skipped: that is where the policy runs out of memory.
      const uint64_t need = plan_kv(model->config(), o).batch_bytes(size);
      if (!f.batch_sizes.empty() && need > o.kv_memory) {
        std::fprintf(stderr, "bench: %s batch %d needs %.1f MiB of KV, over the cap: skipped\n", kv.describe().c_str(),
                     size, static_cast<double>(need) / 1048576.0);
        continue;
      }
      settings.push_back(o);
    }
  }
  // Rounds alternate the settings (full, bounded, full, ...), so that a machine whose speed
  // drifts (other tenants) weighs on both alike; each setting reports its median round.
  std::vector<std::vector<ThroughputResult>> rounds(settings.size());
  for (int round = 1; round <= f.rounds; ++round) {
    for (size_t i = 0; i < settings.size(); ++i) {
      const ThroughputOptions& o = settings[i];
      std::string label = fmt::format("{} batch {}", o.kv.describe(), o.batch > 0 ? std::to_string(o.batch) : "fit");
      if (f.rounds > 1) label += fmt::format(" (round {}/{})", round, f.rounds);
      ProgressBar bar(label);
      rounds[i].push_back(run_throughput(model, o, [&](uint64_t done, uint64_t total) { bar.update(done, total); }));
      bar.finish();
      std::fprintf(stderr, "bench: %s batch %d: %.1f tok/s\n", o.kv.describe().c_str(), rounds[i].back().batch,
                   rounds[i].back().tokens_per_s);
    }
  }
  for (const auto& r : rounds) results.push_back(median_round(r));
  if (results.empty()) fail("--throughput: no batch size fits the KV cap");
  if (!f.plot.empty()) {
    plot::LinePlot p;
    p.title = fmt::format("Throughput vs batch size ({} + {} tokens, KV cap {})", f.n_prompt, f.n_gen, f.kv_memory);
    p.x_label = "batch size (sequences)";
    p.y_label = "generated tokens/s";
    // Solid: all generated tokens over the whole run (prefill included); dashed: the
    // steady decode phase alone (batch / step time while every sequence decodes).
    for (size_t pi = 0; pi < policies.size(); ++pi) {
      plot::Series total, decode;
      total.label = policies[pi].describe() + ": whole run";
      decode.label = policies[pi].describe() + ": decode phase";
      decode.style = plot::LineStyle::Dashed;
      total.color = decode.color = pi == 0 ? "#1f77b4" : "#d62728";
      for (const ThroughputResult& r : results) {
        if (r.kv_description != policies[pi].describe()) continue;
        total.x.push_back(r.batch);
        total.y.push_back(r.tokens_per_s);
        if (r.decode_tokens_per_s > 0) {
          decode.x.push_back(r.batch);
          decode.y.push_back(r.decode_tokens_per_s);
        }
      }
      if (!total.x.empty()) p.series.push_back(std::move(total));
      if (!decode.x.empty()) p.series.push_back(std::move(decode));
    }
    p.key_position = "top left";
    const std::filesystem::path out(f.plot);
    const std::string dir = out.has_parent_path() ? out.parent_path().string() : ".";
    std::filesystem::create_directories(dir);
    const plot::Figure fig = plot::render(p, dir, out.filename().string());
    std::fprintf(stderr, "bench: wrote %s and %s\n", fig.svg.c_str(), fig.png.c_str());
  }
  if (f.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const ThroughputResult& r : results) j.push_back(throughput_to_json(r));
    std::puts(j.dump(2).c_str());
  } else {
    std::fputs(throughput_to_text(results).c_str(), stdout);
  }
}

void run_bench_command(const BenchFlags& f) {
  if (f.throughput) return run_throughput_command(f);
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
  cmd->add_option("-m,--model", f->model,
                  "Model: a GGUF file, a Hugging Face directory (config.json, safetensors, tokenizer.json), or a "
                  "llama2.c checkpoint (.bin) with --tokenizer");
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
  cmd->add_option("-s,--seed", f->seed, "Seed of the prompt's token ids")
      ->check(unsigned_integer())
      ->capture_default_str();
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--bandwidth", f->bandwidth, "Also run a STREAM-like memory-bandwidth probe (alone without -m)");
  cmd->add_option("--bandwidth-mib", f->bandwidth_mib, "Total size of the probe's three arrays in MiB")
      ->check(CLI::Range(3, 1 << 16))
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print one JSON object instead of the table");
  cmd->add_flag("--throughput", f->throughput,
                "Batched generation under --kv-memory: full f32 vs a bounded policy (default h2o 20%, 10% recent; "
                "--kv-type and --kv-positions apply to it)");
  cmd->add_option("--kv-memory", f->kv_memory, "With --throughput: cap on the sum of the sequences' KV caches")
      ->capture_default_str();
  cmd->add_option("--batch", f->batch, "With --throughput: sequences at once (default: as many as fit the cap)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--batch-sizes", f->batch_sizes, "With --throughput: comma-separated batch sizes to sweep");
  cmd->add_option("--max-step-tokens", f->max_step_tokens, "With --throughput: prefill tokens per engine step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--rounds", f->rounds,
                  "With --throughput: run every setting this many times, alternating them, and report each one's "
                  "median round (tokens/s of every round beside it)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--plot", f->plot, "With --throughput: write throughput vs batch size to PATH.svg/.png");
  cmd->add_flag("--no-baseline", f->no_baseline,
                "With --throughput: run the bounded policy only (e.g. to compare --kv-positions at one batch size)");
  cmd->callback([f] { run_bench_command(*f); });
}

}  // namespace h2o::cli
