// clang-format off
#include "common/strict_fp.h"  // first: see there
// clang-format on
#include "kernels/reference.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "format/tensor_type.h"

namespace h2o {
namespace {

// Halving sum of n (a power of two) lanes: lane j += lane j + n/2 until one is left.
float halving_sum(float* lane, size_t n) {
  for (size_t half = n / 2; half >= 1; half /= 2) {
    for (size_t j = 0; j < half; ++j) lane[j] = lane[j] + lane[j + half];
  }
  return lane[0];
}

// dot_f32_reference's ending: ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)).
float sum_eight_lanes(const float (&lane)[8]) {
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

}  // namespace

// The float operations follow llama2.c's run.c; only dot products sum in eight lanes.
// Greedy output on stories260K matches the reference text byte for byte (tested). Eight
// independent partial sums, combined pairwise at the end: the compiler vectorises this
// without -ffast-math because the summation order is explicit.
float dot_f32_reference(const float* a, const float* b, size_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) lane[j] += a[i + j] * b[i + j];
  }
  float s = sum_eight_lanes(lane);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_f32_reference(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void dot_rows_f32_reference(const float* q, const float* rows, const uint32_t* idx, size_t m, size_t n, float* out) {
  for (size_t j = 0; j < m; ++j) out[j] = dot_f32_reference(q, rows + idx[j] * n, n);
}

void axpy_rows_f32_reference(const float* p, const float* rows, const uint32_t* idx, size_t m, size_t n, float* y) {
  for (size_t j = 0; j < m; ++j) axpy_f32_reference(p[j], rows + idx[j] * n, y, n);
}

float exp_f32_reference(float x) {
  if (std::isnan(x)) return x;
  x = x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;
  const float fn = std::floor(1.44269504088896341f * x + 0.5f);
  float r = x - fn * 0.693359375f;  // ln2's high part: 9 bits, so fn * it is exact
  r = r - fn * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r2 + r + 1.0f;
  // 2^n with n in [-150, 128] as 2^(n >> 1) * 2^(n - (n >> 1)): both factors normal.
  const auto n = static_cast<int32_t>(fn);
  const int32_t n1 = n >> 1, n2 = n - n1;
  const auto pow2 = [](int32_t e) { return std::bit_cast<float>(static_cast<uint32_t>(e + 127) << 23); };
  return y * pow2(n1) * pow2(n2);
}

void softmax_f32_reference(float* x, size_t n) {
  float max = x[0];
  for (size_t i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) {
      x[i + j] = exp_f32_reference(x[i + j] - max);
      lane[j] += x[i + j];
    }
  }
  float sum = sum_eight_lanes(lane);
  for (; i < n; ++i) {
    x[i] = exp_f32_reference(x[i] - max);
    sum += x[i];
  }
  for (i = 0; i < n; ++i) x[i] /= sum;
}

void swiglu_f32_reference(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float val = gate[i];
    val *= 1.0f / (1.0f + exp_f32_reference(-val));
    gate[i] = val * up[i];
  }
}

void matmul_reference(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool) {
  const auto cols = static_cast<size_t>(w.cols);
  const auto rows = static_cast<size_t>(w.rows);
  pool.parallel_for(
      rows,
      [&](size_t begin, size_t end) {
        std::vector<float> decoded;
        if (w.type != TensorType::F32) decoded.resize(cols);
        for (size_t r = begin; r < end; ++r) {
          const float* wr = nullptr;
          if (w.type == TensorType::F32) {
            wr = reinterpret_cast<const float*>(w.row(static_cast<int>(r)));
          } else {
            dequantize_row(w.type, w.row(static_cast<int>(r)), decoded.data(), cols);
            wr = decoded.data();
          }
          for (int t = 0; t < n_tokens; ++t) {
            out[static_cast<size_t>(t) * rows + r] = dot_f32_reference(wr, x + static_cast<size_t>(t) * cols, cols);
          }
        }
      },
      rows * cols * static_cast<size_t>(n_tokens));
}

float dot_f32_fma16_lanes(const float* w, const float* x, size_t n) {
  float lane[16] = {};
  for (size_t i = 0; i < n; ++i) lane[i % 16] = std::fma(w[i], x[i], lane[i % 16]);
  return halving_sum(lane, 16);
}

}  // namespace h2o
