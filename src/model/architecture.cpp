#include "model/architecture.h"

#include <fmt/format.h>

#include "common/check.h"
#include "format/gguf.h"

namespace h2o {

namespace shapes {
TensorShape dim(const ModelConfig& c) { return {1, c.dim}; }
TensorShape hidden(const ModelConfig& c) { return {1, c.hidden_dim}; }
TensorShape q_dim(const ModelConfig& c) { return {1, c.q_dim()}; }
TensorShape kv_dim(const ModelConfig& c) { return {1, c.kv_dim()}; }
TensorShape qkv_dim(const ModelConfig& c) { return {1, c.q_dim() + 2 * c.kv_dim()}; }
TensorShape vocab(const ModelConfig& c) { return {1, c.vocab_size}; }
TensorShape rope_pairs(const ModelConfig& c) { return {1, c.rope_dim / 2}; }
TensorShape embedding(const ModelConfig& c) { return {c.vocab_size, c.embed_dim}; }
TensorShape q_proj(const ModelConfig& c) { return {c.q_dim(), c.dim}; }
TensorShape kv_proj(const ModelConfig& c) { return {c.kv_dim(), c.dim}; }
TensorShape qkv_proj(const ModelConfig& c) { return {c.q_dim() + 2 * c.kv_dim(), c.dim}; }
TensorShape o_proj(const ModelConfig& c) { return {c.dim, c.q_dim()}; }
TensorShape ffn_in(const ModelConfig& c) { return {c.hidden_dim, c.dim}; }
TensorShape ffn_out(const ModelConfig& c) { return {c.dim, c.hidden_dim}; }
TensorShape embed_dim(const ModelConfig& c) { return {1, c.embed_dim}; }
TensorShape positions(const ModelConfig& c) { return {c.context_length + c.position_offset, c.dim}; }
TensorShape project_in(const ModelConfig& c) { return {c.dim, c.embed_dim}; }
TensorShape project_out(const ModelConfig& c) { return {c.embed_dim, c.dim}; }
}  // namespace shapes

void for_each_tensor(const Architecture& arch, const ModelConfig& config,
                     const std::function<void(const TensorRef&)>& fn) {
  for (const ModelTensorSpec& s : arch.model_tensors) {
    TensorRef r;
    r.model_role = s.role;
    r.gguf_name = s.gguf;
    if (s.hf) r.hf_name = s.hf;
    r.hf_transform = s.hf_transform;
    r.kind = s.kind;
    r.optional = s.optional;
    r.shape = s.shape(config);
    fn(r);
  }
  for (int l = 0; l < config.n_layers; ++l) {
    for (const LayerTensorSpec& s : arch.layer_tensors) {
      TensorRef r;
      r.per_layer = true;
      r.layer = l;
      r.layer_role = s.role;
      r.gguf_name = fmt::format("blk.{}.{}", l, s.gguf);
      if (s.hf) r.hf_name = fmt::format(fmt::runtime(s.hf), l);
      r.hf_transform = s.hf_transform;
      r.kind = s.kind;
      r.optional = s.optional;
      r.shape = s.shape(config);
      fn(r);
    }
  }
}

const Architecture& find_architecture(std::string_view name) {
  std::string known;
  for (const Architecture* a : architectures()) {
    if (a->name == name) return *a;
    known += (known.empty() ? "" : ", ") + std::string(a->name);
  }
  fail("architecture '{}' is not supported (supported: {})", printable_string(name), known);
}

const Architecture& find_hf_architecture(std::string_view model_type) {
  std::string known;
  for (const Architecture* a : architectures()) {
    for (std::string_view t : a->hf_model_types) {
      if (t == model_type) return *a;
      known += (known.empty() ? "" : ", ") + std::string(t);
    }
  }
  fail("model_type '{}' is not supported (supported: {})", printable_string(model_type), known);
}

}  // namespace h2o
