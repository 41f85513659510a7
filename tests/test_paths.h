// Paths the tests use: the shared models/data beside the checkout, and the built CLI.
#pragma once

#include <string>

namespace h2o::test {

inline std::string shared_path(const std::string& rel) { return std::string(H2O_SHARED_DIR) + "/" + rel; }
inline std::string model_path(const std::string& name) { return shared_path("models/" + name); }
inline std::string cli_path() { return H2O_CLI_PATH; }

}  // namespace h2o::test
