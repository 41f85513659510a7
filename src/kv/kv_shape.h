// The dimensions the KV cache and attention need, and nothing else of a model: lower
// layers take this, not the model's configuration.
#pragma once

namespace h2o {

struct AttentionShape {
  int n_layers = 0;
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads (GQA when < n_heads)
  int head_dim = 0;
  int context_length = 0;  // positions are < context_length (caps a cache's slots)

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }
};

}  // namespace h2o
