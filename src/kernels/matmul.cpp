#include "kernels/matmul.h"

#include <vector>

#include "kernels/ops.h"

namespace h2o {

void matrix_row(const Matrix& w, int r, float* dst) {
  dequantize_row(w.type, w.row(r), dst, static_cast<size_t>(w.cols));
}

void matmul(const Matrix& w, const float* x, int n_tokens, float* out, ThreadPool& pool) {
  const auto cols = static_cast<size_t>(w.cols);
  const auto rows = static_cast<size_t>(w.rows);
  pool.parallel_for(rows, [&](size_t begin, size_t end) {
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
        out[static_cast<size_t>(t) * rows + r] = dot_f32(wr, x + static_cast<size_t>(t) * cols, w.cols);
      }
    }
  }, rows * cols * static_cast<size_t>(n_tokens));
}

}  // namespace h2o
