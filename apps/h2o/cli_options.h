// Flags shared by the subcommands (model, threads, KV cache), declared once so every
// subcommand spells and documents them the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "common/text_file.h"  // read_text_file for the subcommands
#include "kv/kv_config.h"
#include "model/model.h"
#include "sampling/sampler.h"

namespace h2o::cli {

struct ModelFlags {
  std::string model;
  std::string tokenizer;
  void add(CLI::App& cmd);
  std::shared_ptr<const Model> load() const;
};

struct KvFlags {
  std::string policy = "full";
  std::string budget;
  std::string recent;
  int sinks = 4;
  int prefill_chunk = 0;
  uint64_t seed = 0;
  std::string type = "f32";
  std::string positions = "absolute";
  void add(CLI::App& cmd);
  // Parses and validates the flags (percentages are resolved later, per sequence).
  KvSettings settings() const;
};

// CLI11 validators for --kv-type / --kv-positions (and lists of them): an unknown value is
// a parse error (exit 2) with kv_config's one-line message.
CLI::Validator kv_type_validator();
CLI::Validator kv_positions_validator();

// --temp, --top-k, --top-p, -s/--seed (llama.cpp's spellings and defaults).
struct SamplingFlags {
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  void add(CLI::App& cmd, const std::string& seed_help = "Sampling seed");
  // Validated parameters; throws h2o::Error naming the bad flag.
  SamplerParams params() const;
};

// Validator for unsigned flags (seeds, sizes, limits): decimal digits only, at most `max`.
// Without it CLI11 accepts "-1", "18446744073709551616" and "1e23", wrapped or saturated.
CLI::Validator unsigned_integer(uint64_t max = std::numeric_limits<uint64_t>::max());

// Default thread count: the machine's hardware threads (at least 1).
int default_threads();
void add_threads_flag(CLI::App& cmd, int& threads);

}  // namespace h2o::cli
