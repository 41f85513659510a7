// clang-format off
#include "kernels/strict_fp.h"  // first: see there
// clang-format on
#include "kernels/reference.h"

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

float load_fp16(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// The quantized order for one row whose block b holds the 32 signed values `w[b]`.
template <class Unpack>
float dot_q8_blocks(const uint8_t* w_row, size_t block_bytes, Unpack unpack, const int8_t* qs, const float* d,
                    size_t cols) {
  float acc = 0.0f;
  int8_t w[32];
  for (size_t b = 0; b < cols / 32; ++b) {
    const uint8_t* blk = w_row + b * block_bytes;
    unpack(blk + 2, w);
    int32_t p = 0;
    for (size_t k = 0; k < 32; ++k) p += int32_t{w[k]} * int32_t{qs[b * 32 + k]};
    const float scale = load_fp16(blk) * d[b];
    acc = acc + static_cast<float>(p) * scale;
  }
  return acc;
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
  float s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
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

void quantize_q8_reference(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum) {
  uint8_t block[34];
  for (size_t b = 0; b < n / 32; ++b) {
    quantize_row(TensorType::Q8_0, x + b * 32, block, 32);
    d[b] = load_fp16(block);
    std::memcpy(qs + b * 32, block + 2, 32);
    sum[b] = 0;
    for (size_t k = 0; k < 32; ++k) sum[b] += qs[b * 32 + k];
  }
}

float dot_q8_0_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols) {
  const auto unpack = [](const uint8_t* q, int8_t* w) { std::memcpy(w, q, 32); };
  return dot_q8_blocks(w_row, 34, unpack, qs, d, cols);
}

float dot_q4_0_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols) {
  // Element j < 16 is the low nibble of byte j, element j + 16 its high nibble, minus 8.
  const auto unpack = [](const uint8_t* q, int8_t* w) {
    for (size_t j = 0; j < 16; ++j) {
      w[j] = static_cast<int8_t>((q[j] & 0xF) - 8);
      w[j + 16] = static_cast<int8_t>((q[j] >> 4) - 8);
    }
  };
  return dot_q8_blocks(w_row, 18, unpack, qs, d, cols);
}

float dot_q4_k_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, const int32_t* sum, size_t cols) {
  float lane[8] = {};
  for (size_t i = 0; i < cols / 256; ++i) {
    const uint8_t* blk = w_row + i * 144;
    const float dw = load_fp16(blk), dmin = load_fp16(blk + 2);
    for (size_t k = 0; k < 8; ++k) {
      // Values k: the low (k even) or high nibbles of bytes 32 * (k / 2) .. + 32.
      const uint8_t* q = blk + 16 + 32 * (k / 2);
      const size_t j = 8 * i + k;
      int32_t p = 0;
      for (size_t l = 0; l < 32; ++l) {
        const int32_t v = k % 2 == 0 ? (q[l] & 0xF) : (q[l] >> 4);
        p += v * int32_t{qs[32 * j + l]};
      }
      uint8_t sc = 0, m = 0;
      q4_k_scale_min(static_cast<int>(k), blk + 4, &sc, &m);
      const float ds = dw * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      lane[k] = lane[k] + static_cast<float>(p) * (ds * d[j]);
      lane[k] = lane[k] - static_cast<float>(sum[j]) * (dm * d[j]);
    }
  }
  return halving_sum(lane, 8);
}

float dot_q6_k_q8_blocks(const uint8_t* w_row, const int8_t* qs, const float* d, size_t cols) {
  float lane[8] = {};
  for (size_t i = 0; i < cols / 256; ++i) {
    const uint8_t* blk = w_row + i * 210;
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const float dw = load_fp16(blk + 208);
    for (size_t k = 0; k < 8; ++k) {
      // Values k (dequant_q6_k_block): half h = k / 4 of 128, part k % 4 of it.
      const size_t h = k / 4, part = k % 4, j = 8 * i + k;
      int32_t half_sums[2] = {0, 0};
      for (size_t l = 0; l < 32; ++l) {
        const uint8_t low = ql[64 * h + 32 * (part % 2) + l];
        const int32_t lo4 = part < 2 ? (low & 0xF) : (low >> 4);
        const int32_t hi2 = (qh[32 * h + l] >> (2 * part)) & 3;
        half_sums[l / 16] += ((lo4 | (hi2 << 4)) - 32) * int32_t{qs[32 * j + l]};
      }
      const int32_t p = int32_t{sc[2 * k]} * half_sums[0] + int32_t{sc[2 * k + 1]} * half_sums[1];
      lane[k] = lane[k] + static_cast<float>(p) * (dw * d[j]);
    }
  }
  return halving_sum(lane, 8);
}

}  // namespace h2o
