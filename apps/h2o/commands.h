// Subcommands of the `h2o` CLI. Each file cmd_<name>.cpp defines one register function
// that adds its subcommand (flags, --help text) to the app and its callback.
#pragma once

#include <CLI/CLI.hpp>

namespace h2o::cli {

void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_perplexity(CLI::App& app);

}  // namespace h2o::cli
