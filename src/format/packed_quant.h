// Q8_0 and Q4_0 matrices re-laid out once, at load, for the integer kernels
// (kernels/simd_quant.cpp). In the file a row's blocks follow one another, so one
// int8 dot-product instruction covers one row and every 32-value block ends in a
// horizontal sum and a scale of its own. Here rows go in groups of 8: one 256-bit vector
// holds four consecutive values of each of the 8 rows (one 32-bit lane per row), so one
// vpdpbusd (or maddubs + madd) yields 8 rows' partial sums at once, and the 8 rows' block
// scales sit side by side and are applied with one vector multiply. llama.cpp repacks
// Q4_0 on x86 for the same reason (its block_q4_0x8); this byte order is our own.
//
// Group g holds rows 8g .. 8g+7 (rows past the matrix are zero). Its blocks go in
// super-blocks of 4 (the last one padded with zero blocks), each the 4 blocks' values and
// then their scales, so that a group is read as one forward stream:
//   super-block: qs[4][chunks][8 rows][4 bytes]   d[4][8 rows] (fp16, as in the file)
//   Q4_0: 4 chunks; chunk c, row i = bytes 4c..4c+3 of row i's block as stored: the low
//         nibbles are values 4c..4c+3 ("quad" c), the high nibbles values 16+4c.. (quad
//         c + 4), each stored as value + 8 (0..15).
//   Q8_0: 8 chunks; chunk c, row i = values 4c..4c+3 of row i's block, each stored as
//         value + 128 (XOR 0x80), so that it is an unsigned byte.
// Both are unsigned bytes u = w + offset; a kernel sums u * a exactly in int32 and
// subtracts offset * (sum of the block's activations): the same integer as sum w * a.
// Sizes are multiples of 64, so every group and super-block starts on a cache line.
#pragma once

#include <cstddef>
#include <cstdint>

#include <span>

#include "common/aligned_buffer.h"
#include "format/matrix.h"
#include "format/tensor_type.h"

namespace h2o {

struct PackedQuantShape {
  static constexpr size_t kRows = 8;   // rows per group
  static constexpr size_t kSuper = 4;  // blocks per super-block
  size_t groups = 0;                   // ceil(rows / 8)
  size_t blocks = 0;                   // 32-value blocks per row
  size_t qs_bytes = 0;                 // packed value bytes per block of a group: 128 or 256
  size_t group_bytes = 0;              // one group
  int offset = 0;                      // added to every stored value: 8 or 128

  size_t bytes() const { return groups * group_bytes; }
  size_t super_bytes() const { return kSuper * (qs_bytes + 16); }
  // Offsets from a group's start: block b's packed values, and its 8 fp16 scales.
  size_t qs_at(size_t b) const { return b / kSuper * super_bytes() + b % kSuper * qs_bytes; }
  size_t scales_at(size_t b) const { return b / kSuper * super_bytes() + kSuper * qs_bytes + b % kSuper * 16; }
};

// Q8_0 and Q4_0.
bool is_packable(TensorType t);

// The shape of a rows x cols matrix of a packable type (cols a multiple of 32).
PackedQuantShape packed_quant_shape(TensorType t, size_t rows, size_t cols);

// Packs rows x cols values stored as in the file (row r at src + r * row_bytes) into
// dst[packed_quant_shape(...).bytes()], which must start zeroed.
void pack_quant_matrix(TensorType t, const uint8_t* src, size_t row_bytes, size_t rows, size_t cols, uint8_t* dst);

// Packs every packable matrix of `matrices` into one buffer, `storage` (Matrix::packed
// then points into it), and releases the matrix's pages of the file mapping so the
// weights are resident once, except for the matrix whose data is `keep_mapped` (the
// token embedding, whose rows are looked up as stored).
void pack_matrices(std::span<Matrix* const> matrices, const uint8_t* keep_mapped, AlignedBuffer& storage);

// Value c (0..cols-1) of row r, signed, read back from the packed bytes: the inverse of
// the packing, for tests.
int packed_quant_value(TensorType t, const uint8_t* packed, size_t rows, size_t cols, size_t r, size_t c);

}  // namespace h2o
