#include "kernels/ops.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace h2o {

// The float operations below follow llama2.c's run.c (powf, cosf, sinf, expf, sqrtf in
// float); only dot products and the softmax's sum use eight lanes, and the exp of the
// softmax and of SwiGLU is a fixed polynomial (exp_f32_reference) so that SIMD targets
// reproduce it. Greedy output on stories260K matches the reference text byte for byte
// (tested).

float dot_f32(const float* a, const float* b, int n) { return active_kernels().dot_f32(a, b, static_cast<size_t>(n)); }

void axpy_f32(float a, const float* x, float* y, int n) { active_kernels().axpy_f32(a, x, y, static_cast<size_t>(n)); }

void dot_f32_rows(const float* q, const float* rows, const uint32_t* idx, size_t m, int n, float* out) {
  active_kernels().dot_rows_f32(q, rows, idx, m, static_cast<size_t>(n), out);
}

void axpy_f32_rows(const float* p, const float* rows, const uint32_t* idx, size_t m, int n, float* y) {
  active_kernels().axpy_rows_f32(p, rows, idx, m, static_cast<size_t>(n), y);
}

void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < n; ++j) ss += x[j] * x[j];
  ss /= static_cast<float>(n);
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int j = 0; j < n; ++j) out[j] = w[j] * (ss * x[j]);
}

void layernorm(float* out, const float* x, const float* w, const float* b, int n, float eps) {
  double sum = 0.0;
  for (int j = 0; j < n; ++j) sum += x[j];
  const double mean = sum / n;
  double ss = 0.0;
  for (int j = 0; j < n; ++j) ss += (x[j] - mean) * (x[j] - mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + static_cast<double>(eps)));
  const float m = static_cast<float>(mean);
  for (int j = 0; j < n; ++j) out[j] = w[j] * ((x[j] - m) * inv) + (b ? b[j] : 0.0f);
}

void gelu_erf(float* x, int n) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  for (int i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * kInvSqrt2));
}

void relu(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void swiglu(float* gate, const float* up, int n) { active_kernels().swiglu_f32(gate, up, static_cast<size_t>(n)); }

void softmax(float* x, int n) { active_kernels().softmax_f32(x, static_cast<size_t>(n)); }

}  // namespace h2o
