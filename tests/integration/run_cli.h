// Runs the real `h2o` binary for integration tests and captures its output.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace h2o::test {

struct CliResult {
  int exit_code = -1;
  std::string out;       // stdout
  std::string err;       // stderr
  std::string killed;    // why the run was killed ("timeout", "rss"), empty if it ended by itself
  long peak_rss_kb = 0;  // largest VmRSS seen (only measured when bounded)
};

// Bounds for runs on hostile input, so that a regression (a hang, a runaway allocation)
// fails the test instead of taking the machine: the child is killed past either.
struct CliBounds {
  std::chrono::milliseconds timeout{0};  // 0: none
  long max_rss_kb = 0;                   // 0: none
};

// Runs the CLI with the given arguments (no shell: arguments are passed as they are).
CliResult run_cli(const std::vector<std::string>& args, const CliBounds& bounds = {});

std::string read_text_file(const std::string& path);

}  // namespace h2o::test
