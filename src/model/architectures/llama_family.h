// Shared by the architectures built on the LLaMA block (llama, qwen2): the GGUF keys they
// have in common and the block itself. Each architecture still has its own file with its
// own tensor table (model/architectures/llama.cpp, qwen2.cpp).
#pragma once

#include <string_view>

#include "model/architecture.h"

namespace h2o {

// embedding_length, feed_forward_length, block_count, attention.head_count(_kv),
// attention.key_length, context_length, attention.layer_norm_rms_epsilon,
// rope.dimension_count, rope.freq_base, rope.scaling.*; RMSNorm, SwiGLU.
ModelConfig read_llama_family_gguf(const GgufFile& file, std::string_view arch, RopeStyle style);
void write_llama_family_gguf(const ModelConfig& c, GgufWriter& out);

// Pre-norm block (model-families.md §1.3; §1.4 adds the q/k/v biases):
//   a = RMSNorm(x); q, k, v = Wq a (+bq), Wk a (+bk), Wv a (+bv)
//   x += Wo Attn(q, k, v) (+bo)
//   m = RMSNorm(x); x += Wdown (SiLU(Wgate m) * (Wup m))
void llama_block(const LayerContext& ctx);

}  // namespace h2o
