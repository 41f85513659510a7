// `llama`: LLaMA 1/2/3.x, TinyLlama, Mistral, SmolLM2, and llama2.c checkpoints
// (shared/docs/model-families.md §1.3). RoPE is NORMAL-style (GGUF permutes HF's q/k rows
// for it); Llama 3.1+ files carry per-pair frequency divisors in rope_freqs.weight; the
// head is the token embedding when output.weight is absent.
#include <cmath>
#include <numbers>
#include <optional>

#include "common/check.h"
#include "common/json_file.h"
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

using T = HfTransform;

constexpr ModelTensorSpec kModelTensors[] = {
    {M::TokenEmbd, "token_embd.weight", K::Matrix, false, s::embedding, "model.embed_tokens.weight"},
    {M::OutputNorm, "output_norm.weight", K::Vector, false, s::dim, "model.norm.weight"},
    {M::Output, "output.weight", K::Matrix, true, s::embedding, "lm_head.weight"},  // absent: tied to token_embd
    {M::RopeFreqs, "rope_freqs.weight", K::Vector, true, s::rope_pairs},
};

// HF's q/k rows are in rotate-half order; the GGUF layout (and this engine's NORMAL RoPE)
// wants interleaved pairs, so they are permuted at load (model-families.md §2.7).
constexpr LayerTensorSpec kLayerTensors[] = {
    {L::AttnNorm, "attn_norm.weight", K::Vector, false, s::dim, "model.layers.{}.input_layernorm.weight"},
    {L::AttnQ, "attn_q.weight", K::Matrix, false, s::q_proj, "model.layers.{}.self_attn.q_proj.weight", T::RopePermuteQ},
    {L::AttnK, "attn_k.weight", K::Matrix, false, s::kv_proj, "model.layers.{}.self_attn.k_proj.weight", T::RopePermuteK},
    {L::AttnV, "attn_v.weight", K::Matrix, false, s::kv_proj, "model.layers.{}.self_attn.v_proj.weight"},
    {L::AttnQBias, "attn_q.bias", K::Vector, true, s::q_dim, "model.layers.{}.self_attn.q_proj.bias", T::RopePermuteQ},
    {L::AttnKBias, "attn_k.bias", K::Vector, true, s::kv_dim, "model.layers.{}.self_attn.k_proj.bias", T::RopePermuteK},
    {L::AttnVBias, "attn_v.bias", K::Vector, true, s::kv_dim, "model.layers.{}.self_attn.v_proj.bias"},
    {L::AttnOut, "attn_output.weight", K::Matrix, false, s::o_proj, "model.layers.{}.self_attn.o_proj.weight"},
    {L::AttnOutBias, "attn_output.bias", K::Vector, true, s::dim, "model.layers.{}.self_attn.o_proj.bias"},
    {L::FfnNorm, "ffn_norm.weight", K::Vector, false, s::dim, "model.layers.{}.post_attention_layernorm.weight"},
    {L::FfnGate, "ffn_gate.weight", K::Matrix, false, s::ffn_in, "model.layers.{}.mlp.gate_proj.weight"},
    {L::FfnUp, "ffn_up.weight", K::Matrix, false, s::ffn_in, "model.layers.{}.mlp.up_proj.weight"},
    {L::FfnDown, "ffn_down.weight", K::Matrix, false, s::ffn_out, "model.layers.{}.mlp.down_proj.weight"},
    {L::FfnGateBias, "ffn_gate.bias", K::Vector, true, s::hidden, "model.layers.{}.mlp.gate_proj.bias"},
    {L::FfnUpBias, "ffn_up.bias", K::Vector, true, s::hidden, "model.layers.{}.mlp.up_proj.bias"},
    {L::FfnDownBias, "ffn_down.bias", K::Vector, true, s::dim, "model.layers.{}.mlp.down_proj.bias"},
};

constexpr std::string_view kHfTypes[] = {"llama", "mistral"};

ModelConfig read(const GgufFile& f) { return read_llama_family_gguf(f, "llama", RopeStyle::Normal); }
ModelConfig read_hf(const JsonFields& j) { return read_llama_family_hf(j, "llama", RopeStyle::Normal); }

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

std::vector<float> llama3_rope_factors(int n_rot, float base, double factor, double low, double high,
                                       double original_context) {
  constexpr double kTwoPi = 2.0 * std::numbers::pi;
  std::vector<float> ff(static_cast<size_t>(n_rot / 2));
  const double lo_wl = original_context / low, hi_wl = original_context / high;
  for (size_t i = 0; i < ff.size(); ++i) {
    const double freq = std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / n_rot);
    const double wavelen = kTwoPi / freq;
    if (wavelen < hi_wl) {
      ff[i] = 1.0f;
    } else if (wavelen > lo_wl) {
      ff[i] = static_cast<float>(factor);
    } else {
      const double smooth = (original_context / wavelen - low) / (high - low);
      ff[i] = static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth));
    }
  }
  return ff;
}

void read_hf_rope_scaling(const JsonFields& j, ModelConfig& c) {
  // transformers < 5 writes rope_theta and rope_scaling; >= 5 one rope_parameters object.
  std::optional<JsonFields> params = j.object("rope_parameters");
  c.rope_base = static_cast<float>((params && params->has("rope_theta") ? *params : j)
                                       .number("rope_theta", 10000.0, 1e-6, 1e12));
  std::optional<JsonFields> r = params ? params : j.object("rope_scaling");
  if (!r) return;
  const std::string type = r->has("rope_type") ? r->string("rope_type", std::nullopt) : r->string("type", "default");
  if (type == "default") return;
  if (type == "linear") {
    c.rope_freq_scale = static_cast<float>(1.0 / r->number("factor", std::nullopt, 1e-3, 1e6));
  } else if (type == "llama3") {
    c.rope_factors = llama3_rope_factors(c.rope_dim, c.rope_base, r->number("factor", 8.0, 1e-3, 1e6),
                                         r->number("low_freq_factor", 1.0, 1e-6, 1e6),
                                         r->number("high_freq_factor", 4.0, 1e-6, 1e6),
                                         r->number("original_max_position_embeddings", 8192.0, 1.0, 1e9));
  } else {
    fail("{}: RoPE scaling type '{}' is not supported (supported: default, linear, llama3)", j.where(),
         printable_string(type));
  }
}

ModelConfig read_llama_family_hf(const JsonFields& j, std::string_view arch, RopeStyle style) {
  constexpr int64_t kMax = GgufArchKeys::kMaxDim;
  ModelConfig c;
  c.arch = std::string(arch);
  c.dim = static_cast<int>(j.integer("hidden_size", std::nullopt, 1, kMax));
  c.embed_dim = c.dim;
  c.hidden_dim = static_cast<int>(j.integer("intermediate_size", std::nullopt, 1, kMax));
  c.n_layers = static_cast<int>(j.integer("num_hidden_layers", std::nullopt, 1, kMax));
  c.n_heads = static_cast<int>(j.integer("num_attention_heads", std::nullopt, 1, kMax));
  c.n_kv_heads = static_cast<int>(j.integer("num_key_value_heads", c.n_heads, 1, kMax));
  if (!j.has("head_dim") && c.dim % c.n_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", j.where(), c.dim, c.n_heads);
  c.head_dim = static_cast<int>(j.integer("head_dim", c.dim / c.n_heads, 1, kMax));
  c.context_length = static_cast<int>(j.integer("max_position_embeddings", std::nullopt, 1, 1 << 24));
  c.norm_eps = static_cast<float>(j.number("rms_norm_eps", 1e-6, 1e-12, 1.0));
  const std::string act = j.string("hidden_act", "silu");
  if (act != "silu") fail("{}: hidden_act '{}' is not supported (supported: silu)", j.where(), printable_string(act));
  c.activation = Activation::SiluGated;
  c.rope_style = style;
  c.rope_dim = c.head_dim;
  read_hf_rope_scaling(j, c);
  c.tied_head = j.boolean("tie_word_embeddings", false);
  return c;
}

void llama_block(const LayerContext& ctx) {
  ForwardScratch& s = ctx.s;
  float* x = ctx.x;
  ctx.norm(L::AttnNorm, L::AttnNormBias, x, s.xn.data());
  ctx.linear_many({{L::AttnQ, L::AttnQBias, s.q.data()},
                   {L::AttnK, L::AttnKBias, s.k.data()},
                   {L::AttnV, L::AttnVBias, s.v.data()}},
                  s.xn.data());
  ctx.attend(s.q.data(), s.k.data(), s.v.data(), s.att.data());
  ctx.linear(L::AttnOut, L::AttnOutBias, s.att.data(), s.tmp.data());
  ctx.add_to_residual(s.tmp.data());

  ctx.norm(L::FfnNorm, L::FfnNormBias, x, s.xn.data());
  ctx.linear_many({{L::FfnGate, L::FfnGateBias, s.ffn_a.data()}, {L::FfnUp, L::FfnUpBias, s.ffn_b.data()}},
                  s.xn.data());
  ctx.elementwise(static_cast<size_t>(ctx.rows) * static_cast<size_t>(ctx.config.hidden_dim), 8,
                  [&](size_t b, size_t e) { swiglu(&s.ffn_a[b], &s.ffn_b[b], static_cast<int>(e - b)); });
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
      .hf_model_types = kHfTypes,
      .read_hf = read_hf,
  };
  return arch;
}

}  // namespace h2o
