// Element-wise and row-wise operations of the LLaMA forward pass (scalar reference).
#pragma once

#include "model/config.h"

namespace h2o {

// sum_i a[i] * b[i] in float, with a fixed summation order (eight lanes).
float dot_f32(const float* a, const float* b, int n);

// out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps), over n values.
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);

// Rotates each of n_heads vectors of head_dim values at `pos` (first rope_dim dims).
void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, float base, RopeStyle style);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int n);

// In-place softmax over n values.
void softmax(float* x, int n);

}  // namespace h2o
