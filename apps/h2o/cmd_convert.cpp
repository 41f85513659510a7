// `h2o convert DIR -o OUT.gguf [--type f16]`: a Hugging Face directory (or any model h2o
// loads) written as GGUF: llama.cpp's layout for llama, qwen2 and gptneox, h2o's own for
// opt (docs/opt-gguf.md).
#include <cstdio>
#include <memory>
#include <string>

#include "cli_options.h"
#include "commands.h"
#include "model/convert.h"
#include "model/synth.h"
#include "progress.h"

namespace h2o::cli {
namespace {

struct ConvertFlags {
  std::string input;
  std::string tokenizer;
  std::string output;
  std::string type = "f16";
  int threads = 1;
};

void run_convert(const ConvertFlags& f) {
  ConvertOptions o;
  o.input = f.input;
  o.tokenizer_path = f.tokenizer;
  o.output = f.output;
  o.type = parse_synth_type(f.type);
  o.threads = f.threads;
  std::fprintf(stderr, "convert: %s -> %s (%s)\n", f.input.c_str(), f.output.c_str(), f.type.c_str());
  ProgressBar bar("convert");
  const ConvertResult r = convert_to_gguf(o, [&](uint64_t done, uint64_t total) {
    bar.update(static_cast<size_t>(done >> 20), static_cast<size_t>(total >> 20));
  });
  bar.finish();
  std::fprintf(stderr, "convert: wrote %s: %s, %zu tensors, %.1f MiB\n", f.output.c_str(), r.arch.c_str(), r.n_tensors,
               static_cast<double>(r.file_bytes) / (1024.0 * 1024.0));
}

}  // namespace

void register_convert(CLI::App& app) {
  auto f = std::make_shared<ConvertFlags>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Write a Hugging Face model directory (or any model h2o loads) as a GGUF file llama.cpp reads");
  cmd->add_option("input", f->input, "Hugging Face directory (config.json, *.safetensors, tokenizer.json), or a model file")
      ->required();
  cmd->add_option("-o,--output", f->output, "Output .gguf file")->required();
  cmd->add_option("--type", f->type, "Matrix type: f32, f16, bf16, q8_0, q4_0, ... (vectors stay f32)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f->tokenizer, "tokenizer.bin (llama2.c checkpoints only)");
  add_threads_flag(*cmd, f->threads);
  cmd->callback([f] { run_convert(*f); });
}

}  // namespace h2o::cli
