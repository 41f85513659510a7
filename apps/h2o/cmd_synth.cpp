// `h2o synth --shape NAME --type T -o FILE`: writes a random-weight GGUF of a named
// LLaMA-family shape, for speed and memory measurements (the text it generates is noise).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "model/synth.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct SynthFlags {
  std::string shape;
  std::string type = "f32";
  std::string output;
  uint64_t seed = 0;
  int threads = 1;
  bool list = false;
};

// "1.10B", "0.22B", "164.2K": parameter counts at a glance.
std::string params_text(uint64_t n) {
  const auto d = static_cast<double>(n);
  if (d >= 1e8) return fmt::format("{:.2f}B", d / 1e9);
  if (d >= 1e5) return fmt::format("{:.1f}M", d / 1e6);
  return fmt::format("{:.1f}K", d / 1e3);
}

std::string shape_list() {
  std::string s;
  for (const auto& sh : synth_shapes()) {
    s += fmt::format(
        "  {:<15} {:<8} dim {:>4} hidden {:>5} layers {:>2} heads {:>2}/{:<2} vocab {:>6} ctx {:>6}  {:>6} params  {}\n",
        sh.name, sh.arch, sh.dim, sh.hidden_dim, sh.n_layers, sh.n_heads, sh.n_kv_heads, sh.vocab_size, sh.context_length,
        params_text(sh.n_params()), sh.description);
  }
  return s;
}

void run_synth(const SynthFlags& f) {
  if (f.list) {
    std::fputs(shape_list().c_str(), stdout);
    return;
  }
  if (f.shape.empty()) fail("--shape is required (see --list)");
  if (f.output.empty()) fail("-o/--output is required");
  SynthOptions opts;
  opts.shape = f.shape;
  opts.type = parse_synth_type(f.type);
  opts.seed = f.seed;
  opts.threads = f.threads;
  opts.path = f.output;
  const SynthShape& shape = find_synth_shape(f.shape);
  std::fprintf(stderr, "synth: %s %s, %s params -> %s\n", std::string(shape.name).c_str(),
               std::string(traits(opts.type).name).c_str(), params_text(shape.n_params()).c_str(), f.output.c_str());
  ProgressBar bar("synth");
  const SynthResult r = synthesize_model(opts, [&](uint64_t done, uint64_t total) {
    // MiB units keep the bar's counters readable for multi-GB files.
    bar.update(static_cast<size_t>(done >> 20), static_cast<size_t>(total >> 20));
  });
  bar.finish();
  std::fprintf(stderr, "synth: wrote %s: %zu tensors, %llu params, %.1f MiB\n", f.output.c_str(), r.n_tensors,
               static_cast<unsigned long long>(r.n_params), static_cast<double>(r.file_bytes) / (1024.0 * 1024.0));
}

}  // namespace

void register_synth(CLI::App& app) {
  auto f = std::make_shared<SynthFlags>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a random-weight GGUF of a named model shape (for benchmarks)");
  std::string names;
  for (const auto& sh : synth_shapes()) names += (names.empty() ? "" : ", ") + std::string(sh.name);
  cmd->add_option("--shape", f->shape, names + " (see --list)");
  cmd->add_option(
         "--type", f->type,
         "Matrix type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs "
         "(norms stay f32; the K-quants and iq4_xs need widths that are multiples of 256)")
      ->capture_default_str();
  cmd->add_option("-o,--output", f->output, "Output .gguf file");
  cmd->add_option("-s,--seed", f->seed, "Weight seed")->check(unsigned_integer())->capture_default_str();
  add_threads_flag(*cmd, f->threads);
  cmd->add_flag("--list", f->list, "List the shapes and exit");
  cmd->callback([f] { run_synth(*f); });
}

}  // namespace h2o::cli
