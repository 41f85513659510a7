// The architecture registry: everything that differs between model families lives in one
// file per architecture (model/architectures/*.cpp) and one line in registry.cpp:
//   - its metadata keys (read into ModelConfig from GGUF, and written back by synth/convert),
//   - its tensor table: role -> GGUF name, Hugging Face name, shape rule, optional flag,
//   - its transformer block, written with LayerContext's few operations.
// The forward driver (model/forward.h) knows no architecture: it stacks sequences, looks
// up embeddings, runs the blocks, gathers logits, and owns the KV contract, which a block
// reaches only through LayerContext::attend. So no architecture can get eviction wrong.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/thread_pool.h"
#include "model/config.h"
#include "model/tensor_role.h"
#include "model/weights.h"

namespace h2o {

class GgufFile;
class GgufWriter;

// rows x cols of a matrix ([out][in]; GGUF ne = [cols, rows]), or 1 x n of a vector.
struct TensorShape {
  int64_t rows = 1;
  int64_t cols = 0;
};

enum class TensorKind : uint8_t { Matrix, Vector };

// How a Hugging Face tensor's rows are reordered once, at load, into the layout the
// architecture computes with (GGUF's, so an HF directory and its GGUF conversion hold the
// same tensors): the exception to "weights are used from the mapping".
enum class HfTransform : uint8_t {
  None,
  RopePermuteQ,  // llama q_proj (weight, bias): HF's rotate-half rows -> interleaved pairs, per query head
  RopePermuteK,  // the same for k_proj, per KV head
  NeoxQkv,       // GPT-NeoX query_key_value: per-head [q|k|v] interleave -> [all Q; all K; all V]
};

// One row of an architecture's tensor table.
template <typename Role>
struct TensorSpec {
  Role role;
  const char* gguf = nullptr;  // name in GGUF; per-layer names get the "blk.N." prefix
  TensorKind kind = TensorKind::Matrix;
  bool optional = false;       // absent is fine (biases, untied head, rope_freqs)
  TensorShape (*shape)(const ModelConfig&) = nullptr;
  // Name in a Hugging Face checkpoint ("{}" stands for the layer index); null: none.
  const char* hf = nullptr;
  HfTransform hf_transform = HfTransform::None;
};
using ModelTensorSpec = TensorSpec<ModelRole>;
using LayerTensorSpec = TensorSpec<LayerRole>;

// Scratch rows of one step, sized by the driver from the config: [rows][width] each.
struct ForwardScratch {
  std::vector<float> xn;    // [T][dim] normed input
  std::vector<float> q;     // [T][q_dim]
  std::vector<float> k;     // [T][kv_dim]
  std::vector<float> v;     // [T][kv_dim]
  std::vector<float> qkv;   // [T][q_dim + 2 kv_dim] fused projections
  std::vector<float> att;   // [T][q_dim] attention output
  std::vector<float> ffn_a; // [T][hidden]
  std::vector<float> ffn_b; // [T][hidden]
  std::vector<float> tmp;   // [T][dim]
  std::vector<float> tmp2;  // [T][dim]
};

class Forward;

// What a block sees of one layer in one step: T stacked rows of one or more sequences.
// Made by the driver (model/forward.h).
class LayerContext {
 public:
  LayerContext(const ModelConfig& cfg, const LayerWeights& weights, int layer_index, int n_rows, float* residual,
               ForwardScratch& scratch, ThreadPool& pool, Forward& driver)
      : config(cfg), w(weights), layer(layer_index), rows(n_rows), x(residual), s(scratch), pool_(pool),
        driver_(driver) {}

  const ModelConfig& config;
  const LayerWeights& w;
  const int layer;
  const int rows;  // T
  float* const x;  // [T][dim] the residual stream, updated in place
  ForwardScratch& s;

  // out[T][W.rows] = in[T][W.cols] W^T, plus the bias if the layer has it.
  void linear(LayerRole weight, LayerRole bias, const float* in, float* out) const;
  // linear() for several projections of the same input (q, k, v; gate, up), the same bits:
  // the input is quantized once for all of them (kernels/matmul.h, matmul_many).
  struct Projection {
    LayerRole weight;
    LayerRole bias;
    float* out;
  };
  void linear_many(std::initializer_list<Projection> projections, const float* in) const;
  // out[T][dim] = the config's norm (RMSNorm, or LayerNorm with the bias if present) of in.
  void norm(LayerRole weight, LayerRole bias, const float* in, float* out) const;
  // x[T][dim] += y[T][dim]
  void add_to_residual(const float* y) const;
  // The KV contract for this layer: q [T][q_dim] and k [T][kv_dim] before positions are
  // applied (RoPE happens inside, as the KV cache's position mode says), v [T][kv_dim];
  // writes the attention output out [T][q_dim]. Call exactly once per layer.
  void attend(float* q, float* k, const float* v, float* out) const;
  // Calls fn(begin, end) over a partition of [0, n) on the step's threads: for element-wise
  // work (activations) that costs about `ops_per_element` multiply-adds each (an expf ~8);
  // every element gets the same bits whichever range computes it. Below the pool's
  // threshold it runs on this thread: one decode row's SwiGLU (2,816 values) is cheaper
  // than waking the other thread (measured: splitting it made a batch-1 step 5-10% slower).
  void elementwise(size_t n, size_t ops_per_element, const std::function<void(size_t, size_t)>& fn) const;

 private:
  ThreadPool& pool_;
  Forward& driver_;
};

class JsonFields;

struct Architecture {
  std::string_view name;  // general.architecture in GGUF
  // Reads the hyper-parameters (vocab_size comes from the token embedding, filled later).
  // Throws h2o::Error naming a missing, non-finite or out-of-range key.
  ModelConfig (*read_gguf)(const GgufFile& file) = nullptr;
  // Writes the same keys (h2o synth, h2o convert).
  void (*write_gguf)(const ModelConfig& config, GgufWriter& out) = nullptr;
  std::span<const ModelTensorSpec> model_tensors;
  std::span<const LayerTensorSpec> layer_tensors;
  // One transformer layer on ctx.x.
  void (*block)(const LayerContext& ctx) = nullptr;
  // Hugging Face: the config.json model_type values this architecture reads, and the
  // reader of config.json's fields (vocab_size comes from the embedding). Null: none.
  std::span<const std::string_view> hf_model_types;
  ModelConfig (*read_hf)(const JsonFields& config) = nullptr;
};

// The architecture called `name`; throws h2o::Error naming the supported ones.
const Architecture& find_architecture(std::string_view name);
// The architecture that reads config.json's `model_type`; throws naming the supported ones.
const Architecture& find_hf_architecture(std::string_view model_type);
const std::vector<const Architecture*>& architectures();

// Every tensor of a model of this architecture and config, model-wide ones first, then
// layer by layer: its GGUF name, kind, shape and whether it may be absent.
struct TensorRef {
  bool per_layer = false;
  int layer = -1;
  ModelRole model_role = ModelRole::kCount;
  LayerRole layer_role = LayerRole::kCount;
  std::string gguf_name;
  std::string hf_name;  // empty: not in Hugging Face checkpoints
  HfTransform hf_transform = HfTransform::None;
  TensorKind kind = TensorKind::Matrix;
  bool optional = false;
  TensorShape shape;
};
void for_each_tensor(const Architecture& arch, const ModelConfig& config, const std::function<void(const TensorRef&)>& fn);

// Shape rules shared by the tables.
namespace shapes {
TensorShape dim(const ModelConfig& c);           // 1 x dim
TensorShape hidden(const ModelConfig& c);        // 1 x hidden
TensorShape q_dim(const ModelConfig& c);         // 1 x q_dim
TensorShape kv_dim(const ModelConfig& c);        // 1 x kv_dim
TensorShape qkv_dim(const ModelConfig& c);       // 1 x (q_dim + 2 kv_dim)
TensorShape vocab(const ModelConfig& c);         // 1 x vocab
TensorShape rope_pairs(const ModelConfig& c);    // 1 x rope_dim/2
TensorShape embedding(const ModelConfig& c);     // vocab x embed_dim
TensorShape q_proj(const ModelConfig& c);        // q_dim x dim
TensorShape kv_proj(const ModelConfig& c);       // kv_dim x dim
TensorShape qkv_proj(const ModelConfig& c);      // (q_dim + 2 kv_dim) x dim
TensorShape o_proj(const ModelConfig& c);        // dim x q_dim
TensorShape ffn_in(const ModelConfig& c);        // hidden x dim
TensorShape ffn_out(const ModelConfig& c);       // dim x hidden
TensorShape embed_dim(const ModelConfig& c);     // 1 x embed_dim
TensorShape positions(const ModelConfig& c);     // (context + position_offset) x dim
TensorShape project_in(const ModelConfig& c);    // dim x embed_dim
TensorShape project_out(const ModelConfig& c);   // embed_dim x dim
}  // namespace shapes

}  // namespace h2o
