// Element-wise and row-wise operations of the LLaMA forward pass. dot_f32 and axpy_f32 run
// on the active SIMD target (dispatch.h) with the same bits as their scalar references
// (reference.h), and so do softmax and swiglu; the others are scalar.
#pragma once

#include <cstddef>
#include <cstdint>


namespace h2o {

// sum_i a[i] * b[i] in float, with a fixed summation order (eight lanes; see
// dot_f32_reference). Attention's q.k.
float dot_f32(const float* a, const float* b, int n);

// y[i] += a * x[i] for i < n. Attention's value accumulation.
void axpy_f32(float a, const float* x, float* y, int n);

// Over m gathered rows of n values (row j at rows + idx[j] * n), with the same bits as the
// calls above in a loop: out[j] = dot_f32(q, row j); y += p[j] * row j for j in order.
void dot_f32_rows(const float* q, const float* rows, const uint32_t* idx, size_t m, int n, float* out);
void axpy_f32_rows(const float* p, const float* rows, const uint32_t* idx, size_t m, int n, float* y);

// out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps), over n values.
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);

// out[i] = w[i] * (x[i] - mean) / sqrt(var + eps) + b[i] (b may be null), over n values;
// mean and the biased variance accumulated in double.
void layernorm(float* out, const float* x, const float* w, const float* b, int n, float eps);

// x[i] = GELU(x[i]): the exact erf form (Hugging Face "gelu").
void gelu_erf(float* x, int n);
// x[i] = max(0, x[i])
void relu(float* x, int n);

// gate[i] = silu(gate[i]) * up[i] (swiglu_f32_reference's recipe, reference.h)
void swiglu(float* gate, const float* up, int n);

// In-place softmax over n >= 1 values in fp32 (softmax_f32_reference's recipe, reference.h;
// the same bits on every SIMD target).
void softmax(float* x, int n);

}  // namespace h2o
