// Flags shared by the subcommands (model, threads, KV cache), declared once so every
// subcommand spells and documents them the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "kv/kv_config.h"
#include "model/model.h"

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
  void add(CLI::App& cmd);
  // Parses and validates the flags (percentages are resolved later, per sequence).
  KvSettings settings() const;
};

// A whole text file (prompts, evaluation text). Throws h2o::Error naming the path.
std::string read_text_file(const std::string& path);

// Default thread count: the machine's hardware threads (at least 1).
int default_threads();
void add_threads_flag(CLI::App& cmd, int& threads);

}  // namespace h2o::cli
