// `qwen2`: Qwen1.5, Qwen2, Qwen2.5 (shared/docs/model-families.md §1.4). The LLaMA block
// with q/k/v biases (always present in these files, no bias on the output projection),
// NEOX-style RoPE on the weights as stored, an optional output bias, and the head tied to
// the embedding when output.weight is absent.
#include "format/gguf.h"
#include "model/architecture.h"
#include "model/architectures/llama_family.h"
#include "model/architectures/registry.h"

namespace h2o {
namespace {

using K = TensorKind;
using L = LayerRole;
using M = ModelRole;
namespace s = shapes;

constexpr ModelTensorSpec kModelTensors[] = {
    {M::TokenEmbd, "token_embd.weight", K::Matrix, false, s::embedding, "model.embed_tokens.weight"},
    {M::OutputNorm, "output_norm.weight", K::Vector, false, s::dim, "model.norm.weight"},
    {M::Output, "output.weight", K::Matrix, true, s::embedding, "lm_head.weight"},  // absent: tied to token_embd
    {M::OutputBias, "output.bias", K::Vector, true, s::vocab},
};

// Qwen2 checkpoints are used as stored (NEOX RoPE on HF's rotate-half rows): no transform.
constexpr LayerTensorSpec kLayerTensors[] = {
    {L::AttnNorm, "attn_norm.weight", K::Vector, false, s::dim, "model.layers.{}.input_layernorm.weight"},
    {L::AttnQ, "attn_q.weight", K::Matrix, false, s::q_proj, "model.layers.{}.self_attn.q_proj.weight"},
    {L::AttnK, "attn_k.weight", K::Matrix, false, s::kv_proj, "model.layers.{}.self_attn.k_proj.weight"},
    {L::AttnV, "attn_v.weight", K::Matrix, false, s::kv_proj, "model.layers.{}.self_attn.v_proj.weight"},
    {L::AttnQBias, "attn_q.bias", K::Vector, false, s::q_dim, "model.layers.{}.self_attn.q_proj.bias"},
    {L::AttnKBias, "attn_k.bias", K::Vector, false, s::kv_dim, "model.layers.{}.self_attn.k_proj.bias"},
    {L::AttnVBias, "attn_v.bias", K::Vector, false, s::kv_dim, "model.layers.{}.self_attn.v_proj.bias"},
    {L::AttnOut, "attn_output.weight", K::Matrix, false, s::o_proj, "model.layers.{}.self_attn.o_proj.weight"},
    {L::FfnNorm, "ffn_norm.weight", K::Vector, false, s::dim, "model.layers.{}.post_attention_layernorm.weight"},
    {L::FfnGate, "ffn_gate.weight", K::Matrix, false, s::ffn_in, "model.layers.{}.mlp.gate_proj.weight"},
    {L::FfnUp, "ffn_up.weight", K::Matrix, false, s::ffn_in, "model.layers.{}.mlp.up_proj.weight"},
    {L::FfnDown, "ffn_down.weight", K::Matrix, false, s::ffn_out, "model.layers.{}.mlp.down_proj.weight"},
};

constexpr std::string_view kHfTypes[] = {"qwen2"};

ModelConfig read(const GgufFile& f) { return read_llama_family_gguf(f, "qwen2", RopeStyle::Neox); }
ModelConfig read_hf(const JsonFields& j) { return read_llama_family_hf(j, "qwen2", RopeStyle::Neox); }

}  // namespace

const Architecture& qwen2_architecture() {
  static const Architecture arch{
      .name = "qwen2",
      .read_gguf = read,
      .write_gguf = write_llama_family_gguf,
      .model_tensors = kModelTensors,
      .layer_tensors = kLayerTensors,
      .block = llama_block,
      .hf_model_types = kHfTypes,
      .read_hf = read_hf,
  };
  return arch;
}

}  // namespace h2o
