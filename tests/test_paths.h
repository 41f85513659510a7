// Paths the tests use: the shared models/data beside the checkout, and the built CLI.
#pragma once

#include <cstdlib>
#include <string>

namespace h2o::test {

inline std::string shared_path(const std::string& rel) { return std::string(H2O_SHARED_DIR) + "/" + rel; }
inline std::string model_path(const std::string& name) { return shared_path("models/" + name); }
// H2O_TEST_CLI runs the integration tests against another binary (an older build, to see
// a regression test fail there).
inline std::string cli_path() {
  const char* other = std::getenv("H2O_TEST_CLI");
  return other != nullptr && *other != '\0' ? other : H2O_CLI_PATH;
}

}  // namespace h2o::test
