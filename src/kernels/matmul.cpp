#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
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

// Activations of a quantized type's kind (format/types/int_dot.h), quantized once per call
// for every token: a row per token (token(t), as dot_reference reads them) and the same
// values in tiles of kActTile tokens (tiles(), as the kernels read them: GemmArgs::tiles).
class QuantizedActivations {
 public:
  // Tokens are quantized on the pool's threads (each token's row alone: the same bits).
  QuantizedActivations(const KernelTable& k, ActKind kind, const float* x, size_t n_tokens, size_t cols,
                       ThreadPool& pool)
      : kind_(kind), cols_(cols), rows_(n_tokens, cols, kind) {
    // One token's tile is its row (w = 1): no copy (a decoding step of one sequence).
    if (n_tokens > 1) tiles_.emplace(n_tokens, cols, kind);
    pool.parallel_for(
        n_tokens,
        [&](size_t begin, size_t end) {
          for (size_t t = begin; t < end; ++t) {
            int8_t* qs = rows_.qs.get() + t * cols;
            if (kind_ == ActKind::Q8_K) {
              k.quantize_q8k(x + t * cols, cols, qs, rows_.d.get() + t * cols / 256, rows_.sum16.get() + t * cols / 16,
                             rows_.sum32.get() + t * cols / 32);
            } else {
              k.quantize_q8(x + t * cols, cols, qs, rows_.d.get() + t * cols / 32, rows_.sum.get() + t * cols / 32);
            }
            if (tiles_) copy_to_tile(t, n_tokens);
          }
        },
        n_tokens * cols * 4);
  }
  // Token t's row.
  Q8Activations token(size_t t) const { return rows_.from(t * cols_); }
  // Every tile (GemmArgs::tiles).
  Q8Activations tiles() const { return tiles_ ? tiles_->from(0) : rows_.from(0); }

 private:
  // One set of arrays: values, one scale per block, the kind's sums. Every value is written
  // before it is read: no zero-fill first (a prefill chunk's activations are megabytes).
  struct Arrays {
    Arrays(size_t n_tokens, size_t cols, ActKind kind)
        : qs(std::make_unique_for_overwrite<int8_t[]>(n_tokens * cols)),
          d(std::make_unique_for_overwrite<float[]>(n_tokens * cols / (kind == ActKind::Q8_K ? 256 : 32))) {
      if (kind == ActKind::Q8_K) {
        sum16 = std::make_unique_for_overwrite<int16_t[]>(n_tokens * cols / 16);
        sum32 = std::make_unique_for_overwrite<int16_t[]>(n_tokens * cols / 32);
      } else {
        sum = std::make_unique_for_overwrite<int32_t[]>(n_tokens * cols / 32);
      }
    }
    // The arrays from value v on (v a multiple of the block size).
    Q8Activations from(size_t v) const {
      Q8Activations a;
      a.qs = qs.get() + v;
      if (sum) {
        a.d = d.get() + v / 32;
        a.sum = sum.get() + v / 32;
      } else {
        a.d = d.get() + v / 256;
        a.sum16 = sum16.get() + v / 16;
        a.sum32 = sum32.get() + v / 32;
      }
      return a;
    }
    std::unique_ptr<int8_t[]> qs;
    std::unique_ptr<float[]> d;
    std::unique_ptr<int32_t[]> sum;
    std::unique_ptr<int16_t[]> sum16, sum32;
  };

  // Token t's blocks into its tile (kernel_table.h, act_tile_place).
  void copy_to_tile(size_t t, size_t n_tokens) {
    const size_t nb = cols_ / (kind_ == ActKind::Q8_K ? 256 : 32), src = t * nb;
    const ActTilePlace place = act_tile_place(n_tokens, nb, t);
    for (size_t b = 0; b < nb; ++b) {
      const size_t at = place.first + b * place.width;  // the block's index in the tiles' arrays
      tiles_->d[at] = rows_.d[src + b];
      if (kind_ == ActKind::Q8_K) {  // the sizes as constants: inline copies, no library call
        std::memcpy(tiles_->qs.get() + at * 256, rows_.qs.get() + (src + b) * 256, 256);
        std::memcpy(tiles_->sum16.get() + at * 16, rows_.sum16.get() + (src + b) * 16, 16 * sizeof(int16_t));
        std::memcpy(tiles_->sum32.get() + at * 8, rows_.sum32.get() + (src + b) * 8, 8 * sizeof(int16_t));
      } else {
        std::memcpy(tiles_->qs.get() + at * 32, rows_.qs.get() + (src + b) * 32, 32);
        tiles_->sum[at] = rows_.sum[src + b];
      }
    }
  }

  ActKind kind_;
  size_t cols_;
  Arrays rows_;
  std::optional<Arrays> tiles_;
};

// A target without a kernel for the type: the type's reference product, row by row on the
// weights as stored (the same bits a kernel gives).
void reference_rows(const TypeInfo& type, const Matrix& w, const QuantizedActivations& xq, size_t n_tokens, float* out,
                    ThreadPool& pool) {
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
  const MatmulProduct one{&w, out};
  matmul_many(k, std::span(&one, 1), x, n_tokens, pool);
}

void matmul_many(std::span<const MatmulProduct> products, const float* x, int n_tokens, ThreadPool& pool) {
  matmul_many(active_kernels(), products, x, n_tokens, pool);
}

void matmul_many(const KernelTable& k, std::span<const MatmulProduct> products, const float* x, int n_tokens,
                 ThreadPool& pool) {
  if (products.empty()) return;
  const int cols = products.front().w->cols;
  for (const MatmulProduct& p : products) {
    if (p.w->cols != cols) fail("internal: products of {} and {} columns cannot share one input", cols, p.w->cols);
  }
  if (k.reference) {
    for (const MatmulProduct& p : products) matmul_reference(*p.w, x, n_tokens, p.out, pool);
    return;
  }
  // Each kind of quantized activations the products need, made once for all of them (the
  // same bits each product's own would have: every token's row is quantized alone).
  std::optional<QuantizedActivations> quantized[2];
  const auto activations = [&](ActKind kind) -> const QuantizedActivations& {
    std::optional<QuantizedActivations>& q = quantized[kind == ActKind::Q8_K ? 1 : 0];
    if (!q) q.emplace(k, kind, x, static_cast<size_t>(n_tokens), static_cast<size_t>(cols), pool);
    return *q;
  };
  struct Run {
    GemmFn fn = nullptr;
    GemmArgs a;
    size_t rows = 0;
    size_t first_group = 0;  // this product's row groups in the shared task range
    AlignedBuffer packed_copy;
  };
  std::vector<Run> runs;
  runs.reserve(products.size());
  size_t groups = 0, work = 0;
  for (const MatmulProduct& p : products) {
    const Matrix& w = *p.w;
    const TypeInfo& type = traits(w.type);
    Run r;
    r.rows = static_cast<size_t>(w.rows);
    r.fn = k.gemm[type_slot(w.type)];
    r.a.w = w.data;
    r.a.row_bytes = w.row_bytes;
    r.a.cols = static_cast<size_t>(cols);
    r.a.x = x;
    r.a.n_tokens = static_cast<size_t>(n_tokens);
    r.a.out = p.out;
    r.a.out_stride = r.rows;
    if (type.format.act == ActKind::Float) {
      if (r.fn == nullptr) fail("no {} matrix product on SIMD target {}", type.name, k.name);
    } else {
      const QuantizedActivations& xq = activations(type.format.act);
      if (r.fn == nullptr) {
        reference_rows(type, w, xq, r.a.n_tokens, p.out, pool);
        continue;
      }
      // Weights packed at load (a matrix made outside a model is packed here, per call).
      const PackedShape shape = packed_shape(w.type, r.rows, r.a.cols);
      r.a.w = w.packed;
      if (r.a.w == nullptr) {
        r.packed_copy = AlignedBuffer(shape.bytes());
        pack_matrix(w.type, w.data, w.row_bytes, r.rows, r.a.cols, r.packed_copy.data(), pool);
        r.a.w = r.packed_copy.data();
      }
      r.a.group_bytes = shape.group_bytes;
      r.a.tiles = xq.tiles();
    }
    r.first_group = groups;
    groups += (r.rows + kRowGroup - 1) / kRowGroup;
    work += r.rows * r.a.cols * r.a.n_tokens;
    runs.push_back(std::move(r));
  }
  // One parallel region over every product's row groups: the threads meet once for all the
  // products (q, k and v; gate and up), not once per product.
  pool.parallel_for(
      groups,
      [&](size_t begin, size_t end) {
        for (const Run& r : runs) {
          const size_t g0 = r.first_group, g1 = g0 + (r.rows + kRowGroup - 1) / kRowGroup;
          const size_t b = std::max(begin, g0), e = std::min(end, g1);
          if (b < e) r.fn(r.a, (b - g0) * kRowGroup, std::min(r.rows, (e - g0) * kRowGroup));
        }
      },
      work);
}

}  // namespace h2o
