// Whole-file reads of user-named text files (prompts, evaluation text, task files).
#pragma once

#include <string>
#include <string_view>

namespace h2o {

// The file's bytes. Throws h2o::Error "<path>: cannot open <what>" or "<path>: read error".
std::string read_text_file(const std::string& path, std::string_view what = "text file");

}  // namespace h2o
