// Quantized matrices re-laid out once, at load, for the integer kernels (kernels/
// packed_gemm-inl.h). In the file a row's blocks follow one another, so one int8
// dot-product instruction covers one row and each block ends in a horizontal sum and a
// scale of its own. Here rows go in groups of 8: one 256-bit vector holds four consecutive
// values of each of the 8 rows (one 32-bit lane per row), so one vpdpbusd (or maddubs +
// madd) yields 8 rows' partial sums at once, and the 8 rows' scales sit side by side and
// are applied with one vector operation. llama.cpp repacks Q4_0 and Q4_K on x86 for the
// same reason (block_q4_0x8, block_q4_Kx8); this byte order is our own, and one scheme
// serves every quantized type (format/types/: each type's IntFormat and fields).
//
// Every value is its type's unsigned code u (format/types/type_info.h), in bit planes per
// unit of 32 values of the group's 8 rows ("quad" q = values 4q..4q+3 of the unit; a
// chunk is 32 bytes = 8 rows x 4 bytes, row i's lane at bytes 4i..4i+3, byte k for value
// 4q+k):
//   P4 (4 chunks): chunk c: low nibble = bits 0-3 of quad c, high nibble of quad c + 4;
//   P2 (2 chunks): chunk h: bits 2p..2p+1 = two bits of quad 4h + p;
//   P1 (1 chunk):  bit q = one bit of quad q;
//   P8 (8 chunks): chunk c = quad c's codes.
// A type's unit: 2 bits P2 | 3 bits P2 (bits 0-1) + P1 (bit 2) | 4 bits P4 | 5 bits P4 +
// P1 (bit 4) | 6 bits P4 + P2 (bits 4-5) | 8 bits P8. Each plane's fields then reach their
// place in a byte with one shift and one mask, whatever the quad.
//
// Group g holds rows 8g .. 8g+7 (rows past the matrix are zero). Its blocks follow one
// another, so a group is one forward stream:
//   Q8_0 kinds (blocks of 32): blocks of 4 units (the last padded with zero units):
//       unit[4]  d[4][8 rows] (fp16 as stored)  [has_min: m[4][8 rows] (fp16)]
//   Q8_K kinds (super-blocks of 256): one block per super-block:
//       unit[8]  scales[n_sub / 2][8 rows][2] (int8)  [has_min: mins, same order (uint8)]
//       d[8 rows] (fp16)  [has_min: dmin[8 rows] (fp16)]   padding to 32 bytes
//     (scales in pairs: sub-blocks 2p and 2p+1 of a row side by side, as int16 madd
//     wants them).
// Sizes are multiples of 32, so every unit starts on a 32-byte boundary. Integer bounds:
// a Q8_K kind's sum P = sum_j s_j * sum_k w_k * a_k is below 2^28 in magnitude for every
// type here (Q6_K: 16 sub-blocks * 128 * 16 * 32 * 127), as is M.
#pragma once

#include <cstddef>
#include <cstdint>

#include <span>

#include "common/aligned_buffer.h"
#include "common/thread_pool.h"
#include "format/matrix.h"
#include "format/tensor_type.h"

namespace h2o {

// The byte layout of a format's packed blocks (compile-time: the kernels use it too).
struct PackedLayout {
  static constexpr size_t kRows = 8;  // rows per group
  static constexpr size_t kChunk = 32;

  // Value-plane bytes of one unit of 32 values (8 rows).
  static constexpr size_t unit_bytes(const IntFormat& f) {
    switch (f.bits) {
      case 2: return 2 * kChunk;
      case 3: return 3 * kChunk;
      case 4: return 4 * kChunk;
      case 5: return 5 * kChunk;
      case 6: return 6 * kChunk;
      default: return 8 * kChunk;
    }
  }
  // Offset of the high plane (P1 or P2) in a unit; bit position of its field in the code.
  static constexpr size_t high_plane_at(const IntFormat& f) { return f.bits == 3 ? 2 * kChunk : 4 * kChunk; }
  static constexpr int high_shift(const IntFormat& f) { return f.bits == 3 ? 2 : 4; }
  static constexpr size_t units_per_block(const IntFormat& f) { return f.act == ActKind::Q8_K ? 8 : 4; }
  static constexpr size_t unit_at(const IntFormat& f, size_t u) { return u * unit_bytes(f); }
  // Q8_0 kinds: unit u's 8 fp16 d, and m.
  static constexpr size_t d32_at(const IntFormat& f, size_t u) { return 4 * unit_bytes(f) + 16 * u; }
  static constexpr size_t m32_at(const IntFormat& f, size_t u) { return 4 * unit_bytes(f) + 64 + 16 * u; }
  // Q8_K kinds: pair p of scales (16 bytes), of mins; the 8 fp16 d, dmin.
  static constexpr size_t scales_at(const IntFormat& f, size_t p) { return 8 * unit_bytes(f) + 16 * p; }
  static constexpr size_t mins_at(const IntFormat& f, size_t p) {
    return 8 * unit_bytes(f) + 8 * static_cast<size_t>(f.n_sub()) + 16 * p;
  }
  static constexpr size_t d_at(const IntFormat& f) {
    return 8 * unit_bytes(f) + 8 * static_cast<size_t>(f.n_sub()) * (f.has_min ? 2 : 1);
  }
  static constexpr size_t dmin_at(const IntFormat& f) { return d_at(f) + 16; }
  static constexpr size_t block_bytes(const IntFormat& f) {
    if (f.act != ActKind::Q8_K) return 4 * unit_bytes(f) + 64 * (f.has_min ? 2 : 1);
    return (d_at(f) + 16 * (f.has_min ? 2 : 1) + kChunk - 1) / kChunk * kChunk;
  }
};

struct PackedShape {
  IntFormat format;
  size_t groups = 0;       // ceil(rows / 8)
  size_t units = 0;        // units of 32 values per row (cols / 32)
  size_t blocks = 0;       // packed blocks per row
  size_t group_bytes = 0;  // one group: blocks * block_bytes

  size_t bytes() const { return groups * group_bytes; }
};

// Types with an integer format (every quantized type).
bool is_packable(TensorType t);

// The shape of a rows x cols matrix of a packable type (cols a multiple of its block size).
PackedShape packed_shape(TensorType t, size_t rows, size_t cols);

// Packs rows x cols values stored as in the file (row r at src + r * row_bytes) into
// dst[packed_shape(...).bytes()], which must start zeroed; groups shared out over `pool`.
void pack_matrix(TensorType t, const uint8_t* src, size_t row_bytes, size_t rows, size_t cols, uint8_t* dst,
                 ThreadPool& pool);

// Packs every packable matrix of `matrices` into one buffer, `storage` (Matrix::packed
// then points into it), and releases the matrix's pages of the file mapping so the
// weights are resident once, except for the matrix whose data is `keep_mapped` (the
// token embedding, whose rows are looked up as stored).
void pack_matrices(std::span<Matrix* const> matrices, const uint8_t* keep_mapped, AlignedBuffer& storage);

// Block `b` (a block of the type: 32 or 256 values) of row r read back from the packed
// bytes into the fields the type's reader gives (for tests: the inverse of the packing).
void unpack_block(TensorType t, const uint8_t* packed, size_t rows, size_t cols, size_t r, size_t b, BlockFields& out);

}  // namespace h2o
