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

// Rows per parallel task: a multiple of every kernel's row tile (8: a packed group; 16: two).
constexpr size_t kRowGroup = 16;

void run_rows(GemmFn fn, const GemmArgs& a, size_t rows, ThreadPool& pool) {
  const size_t groups = (rows + kRowGroup - 1) / kRowGroup;
  pool.parallel_for(
      groups, [&](size_t begin, size_t end) { fn(a, begin * kRowGroup, std::min(rows, end * kRowGroup)); },
      rows * a.cols * a.n_tokens);
}

// Activations of a quantized type's kind (format/types/int_dot.h), quantized once per call
// for every token.
class QuantizedActivations {
 public:
  // Tokens are quantized on the pool's threads (each token's row alone: the same bits).
  QuantizedActivations(const KernelTable& k, ActKind kind, const float* x, size_t n_tokens, size_t cols,
                       ThreadPool& pool)
      : kind_(kind), cols_(cols), qs_(n_tokens * cols) {
    const bool k_quants = kind == ActKind::Q8_K;
    if (k_quants) {
      d_.resize(n_tokens * cols / 256);
      sum16_.resize(n_tokens * cols / 16);
      sum32_.resize(n_tokens * cols / 32);
    } else {
      d_.resize(n_tokens * cols / 32);
      sum_.resize(n_tokens * cols / 32);
    }
    pool.parallel_for(
        n_tokens,
        [&](size_t begin, size_t end) {
          for (size_t t = begin; t < end; ++t) {
            int8_t* qs = qs_.data() + t * cols;
            if (k_quants) {
              k.quantize_q8k(x + t * cols, cols, qs, d_.data() + t * cols / 256, sum16_.data() + t * cols / 16,
                             sum32_.data() + t * cols / 32);
            } else {
              k.quantize_q8(x + t * cols, cols, qs, d_.data() + t * cols / 32, sum_.data() + t * cols / 32);
            }
          }
        },
        n_tokens * cols * 4);
  }
  // Token t's row (t = 0: the whole batch, as GemmArgs takes it).
  Q8Activations token(size_t t) const {
    const size_t per_d = kind_ == ActKind::Q8_K ? cols_ / 256 : cols_ / 32;
    Q8Activations a;
    a.qs = qs_.data() + t * cols_;
    a.d = d_.data() + t * per_d;
    if (kind_ == ActKind::Q8_K) {
      a.sum16 = sum16_.data() + t * cols_ / 16;
      a.sum32 = sum32_.data() + t * cols_ / 32;
    } else {
      a.sum = sum_.data() + t * cols_ / 32;
    }
    return a;
  }

 private:
  ActKind kind_;
  size_t cols_;
  std::vector<int8_t> qs_;
  std::vector<float> d_;
  std::vector<int32_t> sum_;
  std::vector<int16_t> sum16_, sum32_;
};

// A target without a kernel for the type: the type's reference product, row by row on the
// weights as stored (the same bits a kernel gives).
void reference_rows(const TypeInfo& type, const Matrix& w, const QuantizedActivations& xq, size_t n_tokens,
                    float* out, ThreadPool& pool) {
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  pool.parallel_for(
      rows,
      [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; ++r) {
          for (size_t t = 0; t < n_tokens; ++t) {
            out[t * rows + r] = dot_reference(type, w.row(static_cast<int>(r)), xq.token(t), cols);
          }
        }
      },
      rows * cols * n_tokens);
}

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
  const TypeInfo& type = traits(w.type);
  const auto rows = static_cast<size_t>(w.rows);
  GemmArgs a;
  a.w = w.data;
  a.row_bytes = w.row_bytes;
  a.cols = static_cast<size_t>(w.cols);
  a.x = x;
  a.n_tokens = static_cast<size_t>(n_tokens);
  a.out = out;
  a.out_stride = rows;
  const GemmFn fn = k.gemm[type_slot(w.type)];
  if (type.format.act == ActKind::Float) {
    if (fn == nullptr) fail("no {} matrix product on SIMD target {}", type.name, k.name);
    return run_rows(fn, a, rows, pool);
  }
  const QuantizedActivations xq(k, type.format.act, x, a.n_tokens, a.cols, pool);
  if (fn == nullptr) return reference_rows(type, w, xq, a.n_tokens, out, pool);
  // Weights packed at load (a matrix made outside a model is packed here, per call).
  const PackedShape shape = packed_shape(w.type, rows, a.cols);
  AlignedBuffer copy;
  a.w = w.packed;
  if (a.w == nullptr) {
    copy = AlignedBuffer(shape.bytes());
    pack_matrix(w.type, w.data, w.row_bytes, rows, a.cols, copy.data(), pool);
    a.w = copy.data();
  }
  a.group_bytes = shape.group_bytes;
  a.xq = xq.token(0);
  run_rows(fn, a, rows, pool);
}

}  // namespace h2o
