// Rotary position embeddings (RoPE) on query and key vectors.
#pragma once

namespace h2o {

// How RoPE pairs dimensions: NORMAL rotates adjacent pairs (x[2i], x[2i+1]) as llama and
// llama2.c do; NEOX rotates (x[i], x[i + n_rot/2]) as GPT-NeoX, Qwen2 and others do.
enum class RopeStyle { Normal, Neox };

// Rotates each of n_heads vectors of head_dim values at `pos` (first rope_dim dims).
void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, float base, RopeStyle style);

}  // namespace h2o
