// Runs the real `h2o` binary for integration tests and captures its output.
#pragma once

#include <string>
#include <vector>

namespace h2o::test {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the CLI with the given arguments (no shell: arguments are passed as they are).
CliResult run_cli(const std::vector<std::string>& args);

std::string read_text_file(const std::string& path);

}  // namespace h2o::test
