// `opt`: Meta's OPT (OPTForCausalLM; shared/docs/model-families.md §2.5, §2.6), one of
// the H2O paper's three families. Learned absolute positions (row p + 2), LayerNorm with
// biases, biases on every projection, ReLU FFN, the head tied to the token embedding;
// `project_in`/`project_out` when the embedding is narrower than the residual stream
// (opt-350m), whose blocks are also post-LayerNorm. No rotary embedding, so eviction never
// changes what a kept key means, and `--kv-positions cache` does not apply.
//
// llama.cpp has no OPT, so the GGUF form is this engine's own (docs/opt-gguf.md): keys
// opt.*, tensor names in llama.cpp's style (position_embd as for gpt2).
#include <cstring>
#include <optional>

#include "common/check.h"
#include "common/json_file.h"
#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/architecture.h"
#include "model/architectures/registry.h"
#include "model/gguf_config.h"

namespace h2o {
namespace {

using K = TensorKind;
using L = LayerRole;
using M = ModelRole;
namespace s = shapes;

// Hugging Face names; checkpoints saved from the base class lack the leading "model."
// (the loader tries both).
constexpr ModelTensorSpec kModelTensors[] = {
    {M::TokenEmbd, "token_embd.weight", K::Matrix, false, s::embedding, "model.decoder.embed_tokens.weight"},
    {M::PosEmbd, "position_embd.weight", K::Matrix, false, s::positions, "model.decoder.embed_positions.weight"},
    {M::ProjectIn, "project_in.weight", K::Matrix, true, s::project_in, "model.decoder.project_in.weight"},
    {M::ProjectOut, "project_out.weight", K::Matrix, true, s::project_out, "model.decoder.project_out.weight"},
    {M::OutputNorm, "output_norm.weight", K::Vector, true, s::dim, "model.decoder.final_layer_norm.weight"},
    {M::OutputNormBias, "output_norm.bias", K::Vector, true, s::dim, "model.decoder.final_layer_norm.bias"},
    {M::Output, "output.weight", K::Matrix, true, s::embedding, "lm_head.weight"},  // tied
};

constexpr LayerTensorSpec kLayerTensors[] = {
    {L::AttnNorm, "attn_norm.weight", K::Vector, false, s::dim, "model.decoder.layers.{}.self_attn_layer_norm.weight"},
    {L::AttnNormBias, "attn_norm.bias", K::Vector, false, s::dim, "model.decoder.layers.{}.self_attn_layer_norm.bias"},
    {L::AttnQ, "attn_q.weight", K::Matrix, false, s::q_proj, "model.decoder.layers.{}.self_attn.q_proj.weight"},
    {L::AttnK, "attn_k.weight", K::Matrix, false, s::kv_proj, "model.decoder.layers.{}.self_attn.k_proj.weight"},
    {L::AttnV, "attn_v.weight", K::Matrix, false, s::kv_proj, "model.decoder.layers.{}.self_attn.v_proj.weight"},
    {L::AttnQBias, "attn_q.bias", K::Vector, false, s::q_dim, "model.decoder.layers.{}.self_attn.q_proj.bias"},
    {L::AttnKBias, "attn_k.bias", K::Vector, false, s::kv_dim, "model.decoder.layers.{}.self_attn.k_proj.bias"},
    {L::AttnVBias, "attn_v.bias", K::Vector, false, s::kv_dim, "model.decoder.layers.{}.self_attn.v_proj.bias"},
    {L::AttnOut, "attn_output.weight", K::Matrix, false, s::o_proj, "model.decoder.layers.{}.self_attn.out_proj.weight"},
    {L::AttnOutBias, "attn_output.bias", K::Vector, false, s::dim, "model.decoder.layers.{}.self_attn.out_proj.bias"},
    {L::FfnNorm, "ffn_norm.weight", K::Vector, false, s::dim, "model.decoder.layers.{}.final_layer_norm.weight"},
    {L::FfnNormBias, "ffn_norm.bias", K::Vector, false, s::dim, "model.decoder.layers.{}.final_layer_norm.bias"},
    {L::FfnUp, "ffn_up.weight", K::Matrix, false, s::ffn_in, "model.decoder.layers.{}.fc1.weight"},
    {L::FfnUpBias, "ffn_up.bias", K::Vector, false, s::hidden, "model.decoder.layers.{}.fc1.bias"},
    {L::FfnDown, "ffn_down.weight", K::Matrix, false, s::ffn_out, "model.decoder.layers.{}.fc2.weight"},
    {L::FfnDownBias, "ffn_down.bias", K::Vector, false, s::dim, "model.decoder.layers.{}.fc2.bias"},
};

constexpr std::string_view kHfTypes[] = {"opt"};
constexpr int kPositionOffset = 2;  // OPTLearnedPositionalEmbedding.offset

void finish(ModelConfig& c) {
  c.arch = "opt";
  c.n_kv_heads = c.n_heads;
  c.norm = NormKind::Layer;
  c.norm_eps = 1e-5f;  // torch LayerNorm's default; OPT sets none
  c.activation = Activation::Relu;
  c.rope_dim = 0;  // learned positions
  c.position_offset = kPositionOffset;
  c.tied_head = true;
}

ModelConfig read(const GgufFile& f) {
  const GgufArchKeys k(f, "opt");
  ModelConfig c;
  c.dim = k.size("embedding_length");
  c.hidden_dim = k.size("feed_forward_length");
  c.n_layers = k.size("block_count");
  c.n_heads = k.size("attention.head_count");
  c.context_length = k.size("context_length");
  c.embed_dim = k.size_or("embedding_projection_length", c.dim);
  c.norm_after = !k.flag_or("layer_norm_before", true);
  finish(c);
  c.norm_eps = k.positive_or("attention.layer_norm_epsilon", 1e-5f);
  if (c.dim % c.n_heads != 0)
    fail("{}: embedding length {} is not a multiple of head count {}", f.source_name(), c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  return c;
}

void write(const ModelConfig& c, GgufWriter& out) {
  GgufArchKeyWriter k(out, "opt");
  k.u32("context_length", c.context_length);
  k.u32("embedding_length", c.dim);
  k.u32("block_count", c.n_layers);
  k.u32("feed_forward_length", c.hidden_dim);
  k.u32("attention.head_count", c.n_heads);
  k.f32("attention.layer_norm_epsilon", c.norm_eps);
  if (c.embed_dim != c.dim) k.u32("embedding_projection_length", c.embed_dim);
  k.flag("layer_norm_before", !c.norm_after);
}

// config.json of OPTForCausalLM (§2.4).
ModelConfig read_hf(const JsonFields& j) {
  constexpr int64_t kMax = GgufArchKeys::kMaxDim;
  ModelConfig c;
  c.dim = static_cast<int>(j.has("hidden_size") ? j.integer("hidden_size", std::nullopt, 1, kMax)
                                                : j.integer("d_model", std::nullopt, 1, kMax));
  c.hidden_dim = static_cast<int>(j.integer("ffn_dim", std::nullopt, 1, kMax));
  c.n_layers = static_cast<int>(j.integer("num_hidden_layers", std::nullopt, 1, kMax));
  c.n_heads = static_cast<int>(j.integer("num_attention_heads", std::nullopt, 1, kMax));
  c.context_length = static_cast<int>(j.integer("max_position_embeddings", 2048, 1, 1 << 24));
  c.embed_dim = static_cast<int>(j.integer("word_embed_proj_dim", c.dim, 1, kMax));
  c.norm_after = !j.boolean("do_layer_norm_before", true);
  const std::string act = j.string("activation_function", "relu");
  if (act != "relu") fail("{}: activation_function '{}' is not supported (supported: relu)", j.where(), printable_string(act));
  if (!j.boolean("enable_bias", true)) fail("{}: enable_bias false is not supported", j.where());
  if (!j.boolean("layer_norm_elementwise_affine", true))
    fail("{}: layer_norm_elementwise_affine false is not supported", j.where());
  finish(c);
  if (c.dim % c.n_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", j.where(), c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  return c;
}

// Pre-LN (every OPT but 350m):
//   x += Wo Attn(q, k, v of LN1 x) + bo;  x += W2 ReLU(W1 LN2 x + b1) + b2
// Post-LN (do_layer_norm_before false, opt-350m): q, k, v from x itself;
//   x = LN1(x + Wo Attn + bo);  x = LN2(x + W2 ReLU(W1 x + b1) + b2)
// (HF scales q by 1/sqrt(head_dim) after its bias; attention applies the same scale.)
void block(const LayerContext& ctx) {
  ForwardScratch& s = ctx.s;
  const ModelConfig& c = ctx.config;
  const size_t n = static_cast<size_t>(ctx.rows) * static_cast<size_t>(c.dim);
  const bool pre = !c.norm_after;
  const float* attn_in = ctx.x;
  if (pre) {
    ctx.norm(L::AttnNorm, L::AttnNormBias, ctx.x, s.xn.data());
    attn_in = s.xn.data();
  }
  ctx.linear_many({{L::AttnQ, L::AttnQBias, s.q.data()},
                   {L::AttnK, L::AttnKBias, s.k.data()},
                   {L::AttnV, L::AttnVBias, s.v.data()}},
                  attn_in);
  ctx.attend(s.q.data(), s.k.data(), s.v.data(), s.att.data());
  ctx.linear(L::AttnOut, L::AttnOutBias, s.att.data(), s.tmp.data());
  ctx.add_to_residual(s.tmp.data());
  if (!pre) {
    ctx.norm(L::AttnNorm, L::AttnNormBias, ctx.x, s.xn.data());
    std::memcpy(ctx.x, s.xn.data(), n * sizeof(float));
  }
  const float* ffn_in = ctx.x;
  if (pre) {
    ctx.norm(L::FfnNorm, L::FfnNormBias, ctx.x, s.xn.data());
    ffn_in = s.xn.data();
  }
  ctx.linear(L::FfnUp, L::FfnUpBias, ffn_in, s.ffn_a.data());
  ctx.elementwise(static_cast<size_t>(ctx.rows) * static_cast<size_t>(c.hidden_dim), 1,
                  [&](size_t b, size_t e) { relu(&s.ffn_a[b], static_cast<int>(e - b)); });
  ctx.linear(L::FfnDown, L::FfnDownBias, s.ffn_a.data(), s.tmp.data());
  ctx.add_to_residual(s.tmp.data());
  if (!pre) {
    ctx.norm(L::FfnNorm, L::FfnNormBias, ctx.x, s.xn.data());
    std::memcpy(ctx.x, s.xn.data(), n * sizeof(float));
  }
}

}  // namespace

const Architecture& opt_architecture() {
  static const Architecture arch{
      .name = "opt",
      .read_gguf = read,
      .write_gguf = write,
      .model_tensors = kModelTensors,
      .layer_tensors = kLayerTensors,
      .block = block,
      .hf_model_types = kHfTypes,
      .read_hf = read_hf,
  };
  return arch;
}

}  // namespace h2o
