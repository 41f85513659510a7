// `h2o convert`: any model h2o loads (a Hugging Face directory above all) written as a GGUF
// file the way llama.cpp's converter lays it out for `llama`, `qwen2` and `gptneox` (q/k
// rows interleaved, NeoX's QKV regrouped, Llama 3 rope_freqs, the vocabulary and chat
// template as tokenizer.ggml.*), so that llama.cpp loads it; and an `opt` GGUF for h2o's
// own use (docs/opt-gguf.md). Matrices are written in the chosen type, vectors in F32.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "format/tensor_type.h"

namespace h2o {

struct ConvertOptions {
  std::string input;           // HF directory, GGUF or llama2.c checkpoint
  std::string tokenizer_path;  // llama2.c only
  std::string output;          // .gguf
  TensorType type = TensorType::F16;
  int threads = 1;
};

struct ConvertResult {
  std::string arch;
  size_t n_tensors = 0;
  uint64_t file_bytes = 0;
};

// Throws h2o::Error for an unreadable input, a type whose block does not divide a row, or
// an I/O failure (no partial file is left behind).
ConvertResult convert_to_gguf(const ConvertOptions& opts,
                              const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace h2o
