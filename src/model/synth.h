// Random-weight GGUF files of named model shapes of every architecture in the registry
// (model/architecture.h), for speed measurements of shapes whose real weights are not at
// hand (`h2o synth`). The tensors are the architecture's own table; the weights are seeded
// noise, scaled so that activations stay finite through every layer; the tokenizer is
// synthetic but a valid SentencePiece (`llama`) vocabulary, so Model::load, llama.cpp and
// every command accept the file. The text it generates is meaningless; only its speed and
// memory are real.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_type.h"
#include "model/config.h"

namespace h2o {

struct SynthShape {
  std::string_view name;
  std::string_view description;
  std::string_view arch = "llama";  // a registry name: llama, qwen2, gptneox
  int dim = 0;         // embedding width
  int hidden_dim = 0;  // feed-forward width
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;  // >= 259: <unk>, <s>, </s> and the 256 byte tokens come first
  int context_length = 0;
  float rope_base = 10000.0f;
  bool tied = false;        // no output.weight: the head is the token embedding
  int rope_dim = 0;         // rotated dims per head; 0: all of them
  bool llama3_rope = false;  // rope_freqs.weight with Llama 3.2's factors (32, 1, 4, 8192)

  uint64_t n_params() const;  // elements of every tensor written
  ModelConfig config() const;  // the hyper-parameters the file will carry
};

// tiny, tinyllama-1.1b, llama2-7b, mha-200m, llama3.2-1b, qwen2.5-0.5b, smollm2-360m,
// pythia-160m, ...
const std::vector<SynthShape>& synth_shapes();
// Throws h2o::Error naming the known shapes.
const SynthShape& find_synth_shape(std::string_view name);
// Any registered tensor type by name (format/tensor_type.h: "f32", "q4_0", "q4_k",
// "iq4_xs", ..., any case). Throws h2o::Error naming the choices. The K-quants and IQ4_XS
// need matrix widths that are multiples of 256 (not the `tiny` shape).
TensorType parse_synth_type(std::string_view name);

struct SynthOptions {
  std::string shape = "tiny";
  // Used instead of the named `shape` when set (tests, odd sizes); SynthResult::shape then
  // points at this member, and the name's characters must outlive the call.
  std::optional<SynthShape> custom_shape;
  TensorType type = TensorType::F32;  // of every matrix; norm vectors are always F32
  uint64_t seed = 0;
  int threads = 1;   // rows are generated in parallel; output is the same
  std::string path;  // output .gguf
};

struct SynthResult {
  const SynthShape* shape = nullptr;
  size_t n_tensors = 0;
  uint64_t n_params = 0;
  uint64_t tensor_bytes = 0;  // data bytes of all tensors
  uint64_t file_bytes = 0;
};

// Called now and then with the tensor bytes written so far and in total.
using SynthProgress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

// Writes the file tensor by tensor (memory stays at a few MiB whatever the shape).
// Throws h2o::Error for an unknown or invalid shape, a type whose block size does not
// divide a row (e.g. Q4_K, 256, with a width of 64),
// or an I/O failure (no partial file is left behind).
SynthResult synthesize_model(const SynthOptions& opts, const SynthProgress& progress = {});

}  // namespace h2o
