// Shared by the architectures built on the LLaMA block (llama, qwen2): the GGUF keys they
// have in common and the block itself. Each architecture still has its own file with its
// own tensor table (model/architectures/llama.cpp, qwen2.cpp).
#pragma once

#include <string_view>
#include <vector>

#include "model/architecture.h"

namespace h2o {

// embedding_length, feed_forward_length, block_count, attention.head_count(_kv),
// attention.key_length, context_length, attention.layer_norm_rms_epsilon,
// rope.dimension_count, rope.freq_base, rope.scaling.*; RMSNorm, SwiGLU.
ModelConfig read_llama_family_gguf(const GgufFile& file, std::string_view arch, RopeStyle style);
void write_llama_family_gguf(const ModelConfig& c, GgufWriter& out);
// config.json of LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM (§2.4): sizes,
// rms_norm_eps, rope_theta and rope_scaling (or transformers 5's rope_parameters:
// default, linear, llama3), tie_word_embeddings.
ModelConfig read_llama_family_hf(const JsonFields& config, std::string_view arch, RopeStyle style);
// HF rope_scaling / rope_parameters into c.rope_base, rope_freq_scale, rope_factors.
void read_hf_rope_scaling(const JsonFields& config, ModelConfig& c);

// Llama 3.1+'s per-pair RoPE frequency divisors (model-families.md §1.3, HF rope_type
// "llama3"), computed in double as llama.cpp's converter does.
std::vector<float> llama3_rope_factors(int n_rot, float base, double factor, double low_freq_factor,
                                       double high_freq_factor, double original_context);

// Pre-norm block (model-families.md §1.3; §1.4 adds the q/k/v biases):
//   a = RMSNorm(x); q, k, v = Wq a (+bq), Wk a (+bk), Wv a (+bv)
//   x += Wo Attn(q, k, v) (+bo)
//   m = RMSNorm(x); x += Wdown (SiLU(Wgate m) * (Wup m))
void llama_block(const LayerContext& ctx);

}  // namespace h2o
