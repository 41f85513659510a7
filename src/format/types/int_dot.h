// The integer products of quantized weights with quantized activations, as fixed-order
// scalar references (every SIMD kernel reproduces them bit for bit, kernels/simd_quant.cpp),
// and the activation quantizers they take.
//
// A row of activations quantized for a type of kind (IntFormat::act):
//   Q8_0: per block b of 32 values, int8 qs, the scale d[b] (quantize_row(Q8_0)'s fp16
//         scale, widened) and the sum of the block's values sum[b] (int32);
//   Q8_K: per super-block i of 256 values, int8 qs in [-127, 127] and the float scale d[i]
//         (ggml's quantize_row_q8_K_ref: the largest-magnitude value maps to -127, values
//         rounded to nearest even), and the sums of every 16 (sum16) and 32 (sum32) values.
//
// The order of the products, per weight row, with w the signed value of a code (u - offset,
// or kIq4Values[u]) and fp16 fields widened to float:
//   Q8_0 kinds: acc = 0; for each block b in order:
//       p = sum_k w_k * qs_k (exact int32);  acc = acc + float(p) * (d_w * d[b]);
//       has_min: acc = acc + float(sum[b]) * (m_w * d[b]);
//   Q8_K kinds: acc = 0; for each super-block i in order:
//       P = sum_j s_j * sum_{k in sub-block j} w_k * qs_k (exact int32);
//       acc = acc + float(P) * (d_w * d[i]);
//       has_min: M = sum_j m_j * (sum of activation sub-block j) (exact int32);
//                acc = acc - float(M) * (dmin_w * d[i]).
// No multiply-add is fused. The integers are exact (bounds in packed_quant.h), so any
// order of integer additions gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/types/type_info.h"

namespace h2o {

// One token's quantized activations (pointers to its row; see above for each kind).
struct Q8Activations {
  const int8_t* qs = nullptr;
  const float* d = nullptr;
  const int32_t* sum = nullptr;    // Q8_0: [cols / 32]
  const int16_t* sum16 = nullptr;  // Q8_K: [cols / 16]
  const int16_t* sum32 = nullptr;  // Q8_K: [cols / 32]
};

// References of the activation quantizers (n a multiple of 32, respectively 256).
void quantize_q8_0_reference(const float* x, size_t n, int8_t* qs, float* d, int32_t* sum);
void quantize_q8_k_reference(const float* x, size_t n, int8_t* qs, float* d, int16_t* sum16, int16_t* sum32);

// The product of one row of a quantized type (as stored) with one token's activations of
// the type's kind, in the order above. cols is a multiple of the type's block size.
float dot_reference(const TypeInfo& type, const uint8_t* w_row, const Q8Activations& a, size_t cols);

}  // namespace h2o
