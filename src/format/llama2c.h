// llama2.c legacy (v0) checkpoints (karpathy/llama2.c run.c): seven int32 header fields
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means a separate classifier), then fp32 tensors in a fixed order. The file
// is memory-mapped and every size is checked against the file length before use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace h2o {

class MappedFile;

struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;   // absolute value
  int32_t seq_len = 0;
  bool shared_classifier = true;
};

// Pointers into the mapping; shapes in row-major [rows][cols] (PyTorch [out, in]).
struct Llama2cWeights {
  const float* token_embedding = nullptr;  // [vocab][dim]
  const float* rms_att = nullptr;          // [L][dim]
  const float* wq = nullptr;               // [L][n_heads*head_size][dim]
  const float* wk = nullptr;               // [L][n_kv_heads*head_size][dim]
  const float* wv = nullptr;               // [L][n_kv_heads*head_size][dim]
  const float* wo = nullptr;               // [L][dim][n_heads*head_size]
  const float* rms_ffn = nullptr;          // [L][dim]
  const float* w1 = nullptr;               // [L][hidden][dim]  (gate)
  const float* w2 = nullptr;               // [L][dim][hidden]  (down)
  const float* w3 = nullptr;               // [L][hidden][dim]  (up)
  const float* rms_final = nullptr;        // [dim]
  const float* wcls = nullptr;             // [vocab][dim] (== token_embedding when shared)
};

class Llama2cCheckpoint {
 public:
  // Throws h2o::Error ("<path>: <problem>") for a bad header or a file of the wrong size.
  static Llama2cCheckpoint open(const std::string& path);

  const Llama2cConfig& config() const { return config_; }
  const Llama2cWeights& weights() const { return weights_; }
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::string path_;
  Llama2cConfig config_;
  Llama2cWeights weights_;
};

}  // namespace h2o
