// Scalar references of the float kernels. dot_f32_reference, axpy_f32_reference and
// matmul_reference are the engine's original portable code, run when H2O_SIMD=scalar; the
// *_lanes references restate, one value at a time, the exact summation order of the SIMD
// kernels so that tests can compare them bit for bit. The quantized products' references
// are in format/types/int_dot.h (dot_reference: one per type, from its integer fields).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/thread_pool.h"
#include "format/matrix.h"

namespace h2o {

// sum a[i] * b[i] in eight lanes (lane i % 8, multiply then add), lanes combined as
// ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)), then the n % 8 tail added in order.
float dot_f32_reference(const float* a, const float* b, size_t n);

// y[i] += a * x[i]
void axpy_f32_reference(float a, const float* x, float* y, size_t n);

// The gathered-row forms (KernelTable::dot_rows_f32, axpy_rows_f32): the calls above in a loop.
void dot_rows_f32_reference(const float* q, const float* rows, const uint32_t* idx, size_t m, size_t n, float* out);
void axpy_rows_f32_reference(const float* p, const float* rows, const uint32_t* idx, size_t m, size_t n, float* y);

// e^x in float by one fixed recipe, the scalar statement of the SIMD softmax's exp (which
// computes the same operations lane by lane, so the same bits): Cephes' expf (x = n ln2 + r
// with ln2 in two parts, |r| <= ln2 / 2, a degree-7 polynomial in r), then times 2^n as two
// exact power-of-two halves, so that a result in the subnormal range is rounded once.
// Within 2 ulp of e^x (tested against exp in double); x < -104 gives +0, x > 89 gives
// +inf, NaN gives NaN.
float exp_f32_reference(float x);

// In-place softmax over n >= 1 values in fp32 (the spec's): x[i] = e^(x[i] - max) / sum,
// e^ by exp_f32_reference, the sum in eight lanes combined as dot_f32_reference's (lane
// i % 8, then the n % 8 tail in order), then one division per value.
void softmax_f32_reference(float* x, size_t n);

// gate[i] = silu(gate[i]) * up[i] with silu(g) = g * (1 / (1 + e^-g)), e^ by
// exp_f32_reference (so that SIMD targets reproduce it), the rest as llama2.c's run.c.
void swiglu_f32_reference(float* gate, const float* up, size_t n);

// out[t][r] = dot_f32_reference(row r decoded to float, x[t]); rows split over the pool.
void matmul_reference(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool);

// The float kernels' order: lane i % 16 accumulates fma(w[i], x[i], lane); the 16 lanes are
// summed by halving (lane j += lane j + 8, then j + 4, j + 2, j + 1).
float dot_f32_fma16_lanes(const float* w, const float* x, size_t n);

}  // namespace h2o
