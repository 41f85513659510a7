// The `h2o` command: thin front end over the library. Every h2o::Error (bad file, bad
// flag value) becomes one line on stderr and exit status 1; CLI parse errors exit 2.
// Messages quote file contents and paths: they are printed through terminal_safe, so a
// crafted model or prompt file cannot send escape sequences to the terminal.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "commands.h"
#include "common/error.h"
#include "common/printable.h"

int main(int argc, char** argv) {
  CLI::App app{"h2o: LLM inference with a KV cache bounded by Heavy-Hitter Oracle eviction"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "h2o 0.1.0");
  h2o::cli::register_inspect(app);
  h2o::cli::register_generate(app);
  h2o::cli::register_perplexity(app);
  h2o::cli::register_analyze(app);
  h2o::cli::register_sweep(app);
  h2o::cli::register_eval(app);
  h2o::cli::register_synth(app);
  h2o::cli::register_bench(app);
  h2o::cli::register_batch(app);
  h2o::cli::register_serve(app);
  h2o::cli::register_convert(app);
  h2o::cli::register_tokenize(app);
  h2o::cli::register_quantize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0; every real parse or validation error
    // (unknown flag, value out of range) exits 2, as documented, not CLI11's own codes.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {  // h2o::Error and anything else
    std::fprintf(stderr, "error: %s\n", h2o::terminal_safe(e.what()).c_str());
    return 1;
  }
  return 0;
}
