// `h2o quantize IN.gguf OUT.gguf TYPE [--dry-run]`: rewrite a GGUF with its matrices in a
// quantized type or one of llama-quantize's mixes (format/quantize_model.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "format/gguf.h"
#include "format/quantize_model.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct QuantizeFlags {
  std::string input, output, type;
  bool dry_run = false;
  bool pure = false;
  bool allow_requantize = false;
  int threads = 1;
};

std::string mix_list() {
  std::string s;
  for (const QuantMix& m : quant_mixes()) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

void run_quantize(const QuantizeFlags& f) {
  const GgufFile in = GgufFile::open(f.input);
  QuantizeOptions opts;
  opts.pure = f.pure;
  opts.allow_requantize = f.allow_requantize;
  const QuantizePlan plan = plan_quantization(in, f.type, opts);
  if (f.dry_run) {
    std::fputs(plan_to_text(plan).c_str(), stdout);
    return;
  }
  std::fprintf(stderr, "quantize: %s -> %s (%s)\n", f.input.c_str(), f.output.c_str(), std::string(plan.mix.name).c_str());
  ProgressBar bar("quantize");
  write_quantized(in, plan, f.output, f.threads, [&](uint64_t done, uint64_t total) {
    bar.update(static_cast<size_t>(done >> 20), static_cast<size_t>(total >> 20));
  });
  bar.finish();
  std::fprintf(stderr, "quantize: wrote %s: %zu tensors, %.2f MiB of tensor data (%.3f bits per weight)\n",
               f.output.c_str(), plan.tensors.size(), static_cast<double>(plan.bytes_out) / 1048576.0,
               plan.n_elements ? 8.0 * static_cast<double>(plan.bytes_out) / static_cast<double>(plan.n_elements) : 0.0);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto f = std::make_shared<QuantizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write a GGUF with its matrices quantized as llama-quantize does (a type or a mix such as q4_k_m)");
  cmd->add_option("IN", f->input, "input GGUF (F32/F16/BF16; quantized inputs need --allow-requantize)")->required();
  cmd->add_option("OUT", f->output, "output GGUF (not needed with --dry-run)");
  cmd->add_option("TYPE", f->type, "type or mix: " + mix_list() + " (any case; q4_k = q4_k_m)");
  cmd->add_flag("--dry-run", f->dry_run, "print the per-tensor plan and the resulting size, write nothing");
  cmd->add_flag("--pure", f->pure, "every quantizable tensor in the mix's base type (no mix rules)");
  cmd->add_flag("--allow-requantize", f->allow_requantize, "decode quantized tensors and quantize them again");
  add_threads_flag(*cmd, f->threads);
  cmd->callback([f] {
    // Positional: IN OUT TYPE, or IN TYPE with --dry-run.
    if (f->dry_run && f->type.empty() && !f->output.empty()) std::swap(f->type, f->output);
    if (f->type.empty()) throw CLI::RequiredError("TYPE");
    if (f->output.empty() && !f->dry_run) throw CLI::RequiredError("OUT");
    run_quantize(*f);
  });
}

}  // namespace h2o::cli
