// `llama`: LLaMA 1/2/3.x, TinyLlama, Mistral, SmolLM2, and llama2.c checkpoints
// (shared/docs/model-families.md §1.3). RoPE is NORMAL-style (GGUF permutes HF's q/k rows
// for it); Llama 3.1+ files carry per-pair frequency divisors in rope_freqs.weight; the
// head is the token embedding when output.weight is absent.
#include "common/check.h"
#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/architecture.h"
#include "model/architectures/llama_family.h"
#include "model/architectures/registry.h"
#include "model/gguf_config.h"

namespace h2o {
namespace {

using K = TensorKind;
using L = LayerRole;
using M = ModelRole;
namespace s = shapes;

constexpr ModelTensorSpec kModelTensors[] = {
    {M::TokenEmbd, "token_embd.weight", K::Matrix, false, s::embedding},
    {M::OutputNorm, "output_norm.weight", K::Vector, false, s::dim},
    {M::Output, "output.weight", K::Matrix, true, s::embedding},  // absent: tied to token_embd
    {M::RopeFreqs, "rope_freqs.weight", K::Vector, true, s::rope_pairs},
};

constexpr LayerTensorSpec kLayerTensors[] = {
    {L::AttnNorm, "attn_norm.weight", K::Vector, false, s::dim},
    {L::AttnQ, "attn_q.weight", K::Matrix, false, s::q_proj},
    {L::AttnK, "attn_k.weight", K::Matrix, false, s::kv_proj},
    {L::AttnV, "attn_v.weight", K::Matrix, false, s::kv_proj},
    {L::AttnQBias, "attn_q.bias", K::Vector, true, s::q_dim},
    {L::AttnKBias, "attn_k.bias", K::Vector, true, s::kv_dim},
    {L::AttnVBias, "attn_v.bias", K::Vector, true, s::kv_dim},
    {L::AttnOut, "attn_output.weight", K::Matrix, false, s::o_proj},
    {L::AttnOutBias, "attn_output.bias", K::Vector, true, s::dim},
    {L::FfnNorm, "ffn_norm.weight", K::Vector, false, s::dim},
    {L::FfnGate, "ffn_gate.weight", K::Matrix, false, s::ffn_in},
    {L::FfnUp, "ffn_up.weight", K::Matrix, false, s::ffn_in},
    {L::FfnDown, "ffn_down.weight", K::Matrix, false, s::ffn_out},
    {L::FfnGateBias, "ffn_gate.bias", K::Vector, true, s::hidden},
    {L::FfnUpBias, "ffn_up.bias", K::Vector, true, s::hidden},
    {L::FfnDownBias, "ffn_down.bias", K::Vector, true, s::dim},
};

ModelConfig read(const GgufFile& f) { return read_llama_family_gguf(f, "llama", RopeStyle::Normal); }

}  // namespace

ModelConfig read_llama_family_gguf(const GgufFile& f, std::string_view arch, RopeStyle style) {
  const GgufArchKeys k(f, arch);
  ModelConfig c;
  c.arch = std::string(arch);
  c.dim = k.size("embedding_length");
  c.embed_dim = c.dim;
  c.hidden_dim = k.size("feed_forward_length");
  c.n_layers = k.size("block_count");
  c.n_heads = k.size("attention.head_count");
  c.n_kv_heads = k.size_or("attention.head_count_kv", c.n_heads);
  c.context_length = k.size("context_length");
  if (!k.has("attention.key_length") && c.dim % c.n_heads != 0)
    fail("{}: embedding length {} is not a multiple of head count {}", f.source_name(), c.dim, c.n_heads);
  c.head_dim = k.size_or("attention.key_length", c.dim / c.n_heads);
  if (k.size_or("attention.value_length", c.head_dim) != c.head_dim)
    fail("{}: {} differs from {}, which is not supported", f.source_name(), k.key("attention.value_length"),
         k.key("attention.key_length"));
  c.norm = NormKind::Rms;
  c.norm_eps = k.positive_or("attention.layer_norm_rms_epsilon", 1e-5f);
  c.activation = Activation::SiluGated;
  c.rope_style = style;
  c.rope_dim = k.size_or("rope.dimension_count", c.head_dim);
  c.rope_base = k.positive_or("rope.freq_base", 10000.0f);
  c.rope_freq_scale = k.rope_freq_scale();
  return c;
}

void write_llama_family_gguf(const ModelConfig& c, GgufWriter& out) {
  GgufArchKeyWriter k(out, c.arch);
  k.u32("context_length", c.context_length);
  k.u32("embedding_length", c.dim);
  k.u32("block_count", c.n_layers);
  k.u32("feed_forward_length", c.hidden_dim);
  k.u32("rope.dimension_count", c.rope_dim);
  k.u32("attention.head_count", c.n_heads);
  k.u32("attention.head_count_kv", c.n_kv_heads);
  if (c.head_dim * c.n_heads != c.dim) {
    k.u32("attention.key_length", c.head_dim);
    k.u32("attention.value_length", c.head_dim);
  }
  k.f32("attention.layer_norm_rms_epsilon", c.norm_eps);
  k.f32("rope.freq_base", c.rope_base);
  if (c.rope_freq_scale != 1.0f) {
    out.set_string(c.arch + ".rope.scaling.type", "linear");
    k.f32("rope.scaling.factor", 1.0f / c.rope_freq_scale);
  }
}

void llama_block(const LayerContext& ctx) {
  ForwardScratch& s = ctx.s;
  float* x = ctx.x;
  ctx.norm(L::AttnNorm, L::AttnNormBias, x, s.xn.data());
  ctx.linear(L::AttnQ, L::AttnQBias, s.xn.data(), s.q.data());
  ctx.linear(L::AttnK, L::AttnKBias, s.xn.data(), s.k.data());
  ctx.linear(L::AttnV, L::AttnVBias, s.xn.data(), s.v.data());
  ctx.attend(s.q.data(), s.k.data(), s.v.data(), s.att.data());
  ctx.linear(L::AttnOut, L::AttnOutBias, s.att.data(), s.tmp.data());
  ctx.add_to_residual(s.tmp.data());

  ctx.norm(L::FfnNorm, L::FfnNormBias, x, s.xn.data());
  ctx.linear(L::FfnGate, L::FfnGateBias, s.xn.data(), s.ffn_a.data());
  ctx.linear(L::FfnUp, L::FfnUpBias, s.xn.data(), s.ffn_b.data());
  swiglu(s.ffn_a.data(), s.ffn_b.data(), ctx.rows * ctx.config.hidden_dim);
  ctx.linear(L::FfnDown, L::FfnDownBias, s.ffn_a.data(), s.tmp.data());
  ctx.add_to_residual(s.tmp.data());
}

const Architecture& llama_architecture() {
  static const Architecture arch{
      .name = "llama",
      .read_gguf = read,
      .write_gguf = write_llama_family_gguf,
      .model_tensors = kModelTensors,
      .layer_tensors = kLayerTensors,
      .block = llama_block,
  };
  return arch;
}

}  // namespace h2o
