// A loaded model: its architecture (model/architecture.h), configuration, weights
// (mapped from the file, indexed by role), RoPE table and tokenizer. Immutable after
// loading and shared by any number of sessions.
#pragma once

#include <memory>
#include <string>

#include "kernels/rope.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace h2o {

struct Architecture;
class GgufFile;
class Llama2cCheckpoint;
class SafetensorsCheckpoint;

struct ModelLoadOptions {
  std::string path;            // .gguf, a Hugging Face directory, or a llama2.c checkpoint
  std::string tokenizer_path;  // llama2.c tokenizer.bin (required for llama2.c checkpoints)
};

class Model {
 public:
  // A directory is a Hugging Face checkpoint (config.json, safetensors, tokenizer.json);
  // a file's format comes from its first bytes. Throws h2o::Error naming the problem
  // (unknown format or architecture, missing or out-of-range metadata, missing, unexpected
  // or misshapen tensors).
  static std::shared_ptr<const Model> load(const ModelLoadOptions& opts);

  const Architecture& architecture() const { return *arch_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const RopeTable& rope() const { return rope_; }  // built once at load
  const std::string& path() const { return path_; }
  std::string describe() const;  // one line: arch, shape, weight types

  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

 private:
  Model();
  void load_gguf(const std::string& path);
  void load_llama2c(const std::string& path, const std::string& tokenizer_path);
  void load_hf(const std::string& dir);

  std::string path_;
  const Architecture* arch_ = nullptr;
  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<GgufFile> gguf_;            // keeps the mapping alive
  std::unique_ptr<Llama2cCheckpoint> l2c_;    // keeps the mapping alive
  std::unique_ptr<SafetensorsCheckpoint> hf_;  // keeps the mappings alive
};

}  // namespace h2o
