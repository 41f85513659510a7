// `h2o inspect MODEL [--json]`: print a model file's metadata and tensor table.
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "format/inspect.h"

namespace h2o::cli {

void register_inspect(CLI::App& app) {
  struct Options {
    std::string model;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();  // outlives this function: the callback owns it
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a model's metadata, tensor table and totals (GGUF, llama2.c .bin, or a Hugging Face directory)");
  cmd->add_option("MODEL", opts->model, "model: GGUF file, llama2.c legacy checkpoint, or Hugging Face directory")
      ->required();
  cmd->add_flag("--json", opts->json, "print the report as JSON instead of a table");
  cmd->callback([opts] {
    const InspectReport report = inspect_model(opts->model);
    if (opts->json) {
      // Strings are already printable; `replace` is a second guard against bad UTF-8.
      std::cout << report_to_json(report).dump(2, ' ', false,
                                                nlohmann::json::error_handler_t::replace)
                << '\n';
    } else {
      std::cout << report_to_text(report);
    }
  });
}

}  // namespace h2o::cli
