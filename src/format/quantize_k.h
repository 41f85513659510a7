// Encoders for ggml's K-quant super-blocks (Q4_K, Q6_K), following ggml's reference
// quantizers (quantize_row_q4_K_ref / quantize_row_q6_K_ref in ggml-quants.c) so that the
// bytes are what ggml and dequantize_row() read. Both work on super-blocks of 256 values.
//
// Q4_K, 144 bytes per 256 values:
//   [0..2)    d     fp16: super-scale of the eight 6-bit sub-block scales
//   [2..4)    dmin  fp16: super-scale of the eight 6-bit sub-block mins
//   [4..16)   eight (scale, min) pairs of 6 bits each, packed into 12 bytes:
//             pair j < 4:  scale = byte[j] & 63,  min = byte[j+4] & 63
//             pair j >= 4: low nibbles in byte[j+4] (scale low, min high), the two high
//             bits of scale in bits 6..7 of byte[j-4], of min in bits 6..7 of byte[j]
//   [16..144) 4-bit quants q: values 64c..64c+31 in the low nibbles of bytes 32c..32c+31,
//             values 64c+32..64c+63 in their high nibbles
//   value i of sub-block j (32 values each) = d*scale_j * q_i - dmin*min_j
//
// Q6_K, 210 bytes per 256 values:
//   [0..128)   ql: low 4 bits of the quants    [128..192) qh: high 2 bits of the quants
//   [192..208) sixteen int8 sub-block scales   [208..210) d fp16
//   value i of sub-block j (16 values each) = d*scale_j * (q_i - 32), q_i in [0, 63]
//   Each half of 128 values h uses ql[64h..64h+64) and qh[32h..32h+32): for l < 32,
//   values l, l+32, l+64, l+96 of the half keep their low nibbles in ql[l] (low),
//   ql[l+32] (low), ql[l] (high), ql[l+32] (high), and their high bit pairs in bits
//   0-1, 2-3, 4-5, 6-7 of qh[l].
#pragma once

#include <cstddef>
#include <cstdint>

namespace h2o {

// n must be a multiple of 256 (throws h2o::Error otherwise); dst holds n/256 blocks.
void quantize_row_q4_k(const float* src, uint8_t* dst, size_t n);
void quantize_row_q6_k(const float* src, uint8_t* dst, size_t n);

}  // namespace h2o
