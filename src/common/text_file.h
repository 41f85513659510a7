// The one reader for every user-named input file that is read whole: llama2.c
// tokenizer.bin, prompt files, evaluation text, task files, JSONL. A path that is not a
// regular file (a directory, a FIFO that would block forever, a device such as /dev/zero
// that never ends) is refused before anything is read, and so is a file larger than the
// cap, each with a one-line h2o::Error naming the path.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace h2o {

inline constexpr size_t kMaxInputFileBytes = size_t{1} << 30;  // 1 GiB: far above any real text or tokenizer

// The file's bytes. Throws h2o::Error: "<path>: cannot open <what>: <reason>", "<path>: is a
// directory (a pipe, a device...), not a <what>", "<path>: the <what> is N bytes, more
// than the limit of M bytes", "<path>: read error: <reason>".
std::string read_text_file(const std::string& path, std::string_view what = "text file",
                           size_t max_bytes = kMaxInputFileBytes);

// "a directory", "a pipe", "a socket", "a device" or "not a regular file", for a mode that
// is not a regular file's (shared with the model-file mapping in format/mapped_file).
std::string_view non_regular_file_kind(mode_t mode);

}  // namespace h2o
