// Subcommands of the `h2o` CLI. Each file cmd_<name>.cpp defines one register function
// that adds its subcommand (flags, --help text) to the app and its callback.
#pragma once

#include <CLI/CLI.hpp>

namespace h2o::cli {

void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_analyze(CLI::App& app);
void register_sweep(CLI::App& app);
void register_eval(CLI::App& app);
void register_synth(CLI::App& app);
void register_bench(CLI::App& app);
void register_batch(CLI::App& app);
void register_serve(CLI::App& app);
void register_convert(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_quantize(CLI::App& app);

}  // namespace h2o::cli
