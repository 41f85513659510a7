// `gptneox`: Pythia, GPT-NeoX-20B (shared/docs/model-families.md §1.5). LayerNorm with
// biases, one fused QKV projection (rows: all Q, then all K, then all V, as llama.cpp's
// converter regroups HF's per-head interleave), partial NEOX-style RoPE on the first
// rope.dimension_count dims of each head, GELU FFN with biases, and the parallel residual
// x' = x + Attn(LN1 x) + FFN(LN2 x) (sequential when use_parallel_residual is false).
// GELU is the exact erf form, as Hugging Face computes Pythia (llama.cpp uses tanh).
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

constexpr ModelTensorSpec kModelTensors[] = {
    {M::TokenEmbd, "token_embd.weight", K::Matrix, false, s::embedding, "gpt_neox.embed_in.weight"},
    {M::OutputNorm, "output_norm.weight", K::Vector, false, s::dim, "gpt_neox.final_layer_norm.weight"},
    {M::OutputNormBias, "output_norm.bias", K::Vector, false, s::dim, "gpt_neox.final_layer_norm.bias"},
    {M::Output, "output.weight", K::Matrix, false, s::embedding, "embed_out.weight"},
};

// HF interleaves q, k and v per head in query_key_value; they are regrouped at load.
constexpr LayerTensorSpec kLayerTensors[] = {
    {L::AttnNorm, "attn_norm.weight", K::Vector, false, s::dim, "gpt_neox.layers.{}.input_layernorm.weight"},
    {L::AttnNormBias, "attn_norm.bias", K::Vector, false, s::dim, "gpt_neox.layers.{}.input_layernorm.bias"},
    {L::AttnQKV, "attn_qkv.weight", K::Matrix, false, s::qkv_proj, "gpt_neox.layers.{}.attention.query_key_value.weight",
     HfTransform::NeoxQkv},
    {L::AttnQKVBias, "attn_qkv.bias", K::Vector, false, s::qkv_dim, "gpt_neox.layers.{}.attention.query_key_value.bias",
     HfTransform::NeoxQkv},
    {L::AttnOut, "attn_output.weight", K::Matrix, false, s::o_proj, "gpt_neox.layers.{}.attention.dense.weight"},
    {L::AttnOutBias, "attn_output.bias", K::Vector, false, s::dim, "gpt_neox.layers.{}.attention.dense.bias"},
    {L::FfnNorm, "ffn_norm.weight", K::Vector, false, s::dim, "gpt_neox.layers.{}.post_attention_layernorm.weight"},
    {L::FfnNormBias, "ffn_norm.bias", K::Vector, false, s::dim, "gpt_neox.layers.{}.post_attention_layernorm.bias"},
    {L::FfnUp, "ffn_up.weight", K::Matrix, false, s::ffn_in, "gpt_neox.layers.{}.mlp.dense_h_to_4h.weight"},
    {L::FfnUpBias, "ffn_up.bias", K::Vector, false, s::hidden, "gpt_neox.layers.{}.mlp.dense_h_to_4h.bias"},
    {L::FfnDown, "ffn_down.weight", K::Matrix, false, s::ffn_out, "gpt_neox.layers.{}.mlp.dense_4h_to_h.weight"},
    {L::FfnDownBias, "ffn_down.bias", K::Vector, false, s::dim, "gpt_neox.layers.{}.mlp.dense_4h_to_h.bias"},
};

constexpr std::string_view kHfTypes[] = {"gpt_neox"};

ModelConfig read(const GgufFile& f) {
  // The 2023 converter wrote attn_qkv in HF's per-head interleaved order and a raw-byte
  // vocabulary, with nothing in the metadata to say so but a missing tokenizer.ggml.pre.
  if (!f.find("tokenizer.ggml.pre"))
    fail("{}: gptneox file without tokenizer.ggml.pre: a legacy conversion whose QKV layout cannot be trusted; "
         "convert it again with a current llama.cpp or `h2o convert`",
         f.source_name());
  const GgufArchKeys k(f, "gptneox");
  ModelConfig c;
  c.arch = "gptneox";
  c.dim = k.size("embedding_length");
  c.embed_dim = c.dim;
  c.hidden_dim = k.size("feed_forward_length");
  c.n_layers = k.size("block_count");
  c.n_heads = k.size("attention.head_count");
  c.n_kv_heads = k.size_or("attention.head_count_kv", c.n_heads);
  if (c.n_kv_heads != c.n_heads) fail("{}: gptneox has no grouped-query attention", f.source_name());
  c.context_length = k.size("context_length");
  if (c.dim % c.n_heads != 0)
    fail("{}: embedding length {} is not a multiple of head count {}", f.source_name(), c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  c.norm = NormKind::Layer;
  c.norm_eps = k.positive("attention.layer_norm_epsilon");
  c.activation = Activation::GeluErf;
  c.parallel_residual = k.flag_or("use_parallel_residual", true);
  c.rope_style = RopeStyle::Neox;
  c.rope_dim = k.size_or("rope.dimension_count", c.head_dim);
  c.rope_base = k.positive_or("rope.freq_base", 10000.0f);
  c.rope_freq_scale = k.rope_freq_scale();
  return c;
}

// config.json of GPTNeoXForCausalLM (§2.4).
ModelConfig read_hf(const JsonFields& j) {
  constexpr int64_t kMax = GgufArchKeys::kMaxDim;
  ModelConfig c;
  c.arch = "gptneox";
  c.dim = static_cast<int>(j.integer("hidden_size", std::nullopt, 1, kMax));
  c.embed_dim = c.dim;
  c.hidden_dim = static_cast<int>(j.integer("intermediate_size", std::nullopt, 1, kMax));
  c.n_layers = static_cast<int>(j.integer("num_hidden_layers", std::nullopt, 1, kMax));
  c.n_heads = static_cast<int>(j.integer("num_attention_heads", std::nullopt, 1, kMax));
  c.n_kv_heads = c.n_heads;
  if (c.dim % c.n_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", j.where(), c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  c.context_length = static_cast<int>(j.integer("max_position_embeddings", std::nullopt, 1, 1 << 24));
  c.norm = NormKind::Layer;
  c.norm_eps = static_cast<float>(j.number("layer_norm_eps", 1e-5, 1e-12, 1.0));
  const std::string act = j.string("hidden_act", "gelu");
  if (act != "gelu") fail("{}: hidden_act '{}' is not supported (supported: gelu)", j.where(), printable_string(act));
  c.activation = Activation::GeluErf;
  c.parallel_residual = j.boolean("use_parallel_residual", true);
  if (!j.boolean("attention_bias", true)) fail("{}: attention_bias false is not supported", j.where());
  c.rope_style = RopeStyle::Neox;
  const double pct = j.number("rotary_pct", 0.25, 0.0, 1.0);
  c.rope_dim = static_cast<int>(c.head_dim * pct);
  if (c.rope_dim < 2 || c.rope_dim % 2 != 0)
    fail("{}: rotary_pct {} gives {} rotary dims of {}; an even count of at least 2 is needed", j.where(), pct,
         c.rope_dim, c.head_dim);
  c.rope_base = static_cast<float>(j.number("rotary_emb_base", 10000.0, 1e-6, 1e12));
  if (j.object("rope_scaling")) fail("{}: rope_scaling for gpt_neox is not supported", j.where());
  c.tied_head = j.boolean("tie_word_embeddings", false);
  return c;
}

void write(const ModelConfig& c, GgufWriter& out) {
  GgufArchKeyWriter k(out, "gptneox");
  k.u32("context_length", c.context_length);
  k.u32("embedding_length", c.dim);
  k.u32("block_count", c.n_layers);
  k.u32("feed_forward_length", c.hidden_dim);
  k.u32("rope.dimension_count", c.rope_dim);
  k.u32("attention.head_count", c.n_heads);
  k.flag("use_parallel_residual", c.parallel_residual);
  k.f32("attention.layer_norm_epsilon", c.norm_eps);
  if (c.rope_base != 10000.0f) k.f32("rope.freq_base", c.rope_base);
}

// x' = x + Wo Attn(LN1 x) + bo + FFN(LN2 x)          (parallel residual)
// x' = h + FFN(LN2 h),  h = x + Wo Attn(LN1 x) + bo  (sequential)
// FFN(z) = Wdown GELU(Wup z + bup) + bdown
void block(const LayerContext& ctx) {
  ForwardScratch& s = ctx.s;
  const ModelConfig& c = ctx.config;
  const size_t T = static_cast<size_t>(ctx.rows);
  const size_t Q = static_cast<size_t>(c.q_dim()), KV = static_cast<size_t>(c.kv_dim()), W = Q + 2 * KV;
  ctx.norm(L::AttnNorm, L::AttnNormBias, ctx.x, s.xn.data());
  ctx.linear(L::AttnQKV, L::AttnQKVBias, s.xn.data(), s.qkv.data());
  for (size_t t = 0; t < T; ++t) {  // [T][Q | K | V] -> q [T][Q], k, v [T][KV]
    const float* row = &s.qkv[t * W];
    std::copy(row, row + Q, &s.q[t * Q]);
    std::copy(row + Q, row + Q + KV, &s.k[t * KV]);
    std::copy(row + Q + KV, row + W, &s.v[t * KV]);
  }
  ctx.attend(s.q.data(), s.k.data(), s.v.data(), s.att.data());
  ctx.linear(L::AttnOut, L::AttnOutBias, s.att.data(), s.tmp.data());
  if (!c.parallel_residual) ctx.add_to_residual(s.tmp.data());
  ctx.norm(L::FfnNorm, L::FfnNormBias, ctx.x, s.xn.data());
  ctx.linear(L::FfnUp, L::FfnUpBias, s.xn.data(), s.ffn_a.data());
  ctx.elementwise(static_cast<size_t>(ctx.rows) * static_cast<size_t>(c.hidden_dim), 8,
                  [&](size_t b, size_t e) { gelu_erf(&s.ffn_a[b], static_cast<int>(e - b)); });
  ctx.linear(L::FfnDown, L::FfnDownBias, s.ffn_a.data(), s.tmp2.data());
  if (c.parallel_residual) ctx.add_to_residual(s.tmp.data());
  ctx.add_to_residual(s.tmp2.data());
}

}  // namespace

const Architecture& gptneox_architecture() {
  static const Architecture arch{
      .name = "gptneox",
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
