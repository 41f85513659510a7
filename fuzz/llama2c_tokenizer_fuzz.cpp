// libFuzzer target for llama2.c tokenizer.bin files (load_tokenizer_from_llama2c, read through
// the one input-file reader): any bytes must load or throw h2o::Error. A tokenizer that
// loads has exactly the vocabulary it was asked for, and every piece can be looked up.
//
// Input: two bytes (little-endian) give the vocabulary size (1 to 65536), the rest is the file.
#include <cstring>
#include <memory>

#include "common/error.h"
#include "fuzz_file.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint16_t n = 0;
  std::memcpy(&n, data, 2);
  const int32_t vocab = static_cast<int32_t>(n) + 1;
  const h2o::fuzz::MemFile file(std::span<const uint8_t>(data + 2, size - 2));
  try {
    const std::unique_ptr<h2o::Tokenizer> tok = h2o::load_tokenizer_from_llama2c(file.path(), vocab);
    if (tok->vocab_size() != vocab) __builtin_trap();
    size_t total = 0;
    for (int32_t i = 0; i < vocab; ++i) total += tok->piece(i).size();
    if (total > size) __builtin_trap();  // pieces come from the file: they cannot outgrow it
  } catch (const h2o::Error&) {
  }
  return 0;
}
