// Hyper-parameters of a LLaMA-family model, read from GGUF metadata or a llama2.c header.
#pragma once

#include <string>

#include "kernels/rope.h"
#include "kv/kv_shape.h"

namespace h2o {

struct ModelConfig {
  std::string arch = "llama";
  int dim = 0;             // embedding width
  int hidden_dim = 0;      // feed-forward width
  int n_layers = 0;
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads (GQA when < n_heads)
  int head_dim = 0;        // dim / n_heads
  int vocab_size = 0;
  int context_length = 0;  // trained context: positions are < context_length
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  int rope_dim = 0;        // dimensions rotated per head (== head_dim for llama)
  RopeStyle rope_style = RopeStyle::Normal;

  int kv_dim() const { return n_kv_heads * head_dim; }
  int q_dim() const { return n_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }
  AttentionShape attention_shape() const { return {n_layers, n_heads, n_kv_heads, head_dim, context_length}; }
};

}  // namespace h2o
