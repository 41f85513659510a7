#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/check.h"
#include "format/packed_quant.h"
#include "kernels/dispatch.h"
#include "kernels/reference.h"

namespace h2o {
namespace {

// Rows per parallel task: a multiple of every kernel's row tile (8: a packed group).
constexpr size_t kRowGroup = 16;

void run_rows(GemmFn fn, const GemmArgs& a, size_t rows, ThreadPool& pool) {
  const size_t groups = (rows + kRowGroup - 1) / kRowGroup;
  pool.parallel_for(
      groups, [&](size_t begin, size_t end) { fn(a, begin * kRowGroup, std::min(rows, end * kRowGroup)); },
      rows * a.cols * a.n_tokens);
}

// Activations quantized to Q8_0 once per call (the quantized weight types):
// [n_tokens][cols] values, [n_tokens][cols / 32] scales and block sums.
struct QuantizedActivations {
  std::vector<int8_t> qs;
  std::vector<float> d;
  std::vector<int32_t> sum;

  QuantizedActivations(const KernelTable& k, const float* x, size_t n_tokens, size_t cols)
      : qs(n_tokens * cols), d(n_tokens * cols / 32), sum(n_tokens * cols / 32) {
    const size_t nb = cols / 32;
    for (size_t t = 0; t < n_tokens; ++t) {
      k.quantize_q8(x + t * cols, cols, qs.data() + t * cols, d.data() + t * nb, sum.data() + t * nb);
    }
  }
  Q8Activations view() const { return Q8Activations{qs.data(), d.data(), sum.data()}; }
};

}  // namespace

void matrix_row(const Matrix& w, int r, float* dst) {
  dequantize_row(w.type, w.row(r), dst, static_cast<size_t>(w.cols));
}

void matmul(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool) {
  matmul(active_kernels(), w, x, n_tokens, out, pool);
}

void matmul(const KernelTable& k, const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool) {
  if (k.reference) {
    matmul_reference(w, x, n_tokens, out, pool);
    return;
  }
  const auto rows = static_cast<size_t>(w.rows);
  GemmArgs a;
  a.w = w.data;
  a.row_bytes = w.row_bytes;
  a.cols = static_cast<size_t>(w.cols);
  a.x = x;
  a.n_tokens = static_cast<size_t>(n_tokens);
  a.out = out;
  a.out_stride = rows;
  switch (w.type) {
    case TensorType::F32:
      return run_rows(k.gemm_f32, a, rows, pool);
    case TensorType::F16:
      return run_rows(k.gemm_f16, a, rows, pool);
    case TensorType::BF16:
      return run_rows(k.gemm_bf16, a, rows, pool);
    case TensorType::Q8_0:
    case TensorType::Q4_0: {
      // Weights packed at load (a matrix made outside a model is packed here, per call).
      const PackedQuantShape shape = packed_quant_shape(w.type, rows, a.cols);
      AlignedBuffer copy;
      a.w = w.packed;
      if (a.w == nullptr) {
        copy = AlignedBuffer(shape.bytes());
        pack_quant_matrix(w.type, w.data, w.row_bytes, rows, a.cols, copy.data());
        a.w = copy.data();
      }
      a.group_bytes = shape.group_bytes;
      const QuantizedActivations xq(k, x, a.n_tokens, a.cols);
      a.xq = xq.view();
      return run_rows(w.type == TensorType::Q8_0 ? k.gemm_q8_0 : k.gemm_q4_0, a, rows, pool);
    }
    case TensorType::Q4_K:
    case TensorType::Q6_K: {
      // Weights as stored, row by row.
      const QuantizedActivations xq(k, x, a.n_tokens, a.cols);
      a.xq = xq.view();
      return run_rows(w.type == TensorType::Q4_K ? k.gemm_q4_k : k.gemm_q6_k, a, rows, pool);
    }
  }
  fail("cannot multiply by tensor type {}", static_cast<uint32_t>(w.type));
}

}  // namespace h2o
