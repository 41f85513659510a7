#include "format/packed_quant.h"

#include <cstring>

#include "common/check.h"
#include "format/mapped_file.h"

namespace h2o {

bool is_packable(TensorType t) { return t == TensorType::Q8_0 || t == TensorType::Q4_0; }

PackedQuantShape packed_quant_shape(TensorType t, size_t rows, size_t cols) {
  if (!is_packable(t) || cols % 32 != 0) fail("cannot pack a {} matrix of {} columns", traits(t).name, cols);
  PackedQuantShape s;
  s.groups = (rows + PackedQuantShape::kRows - 1) / PackedQuantShape::kRows;
  s.blocks = cols / 32;
  const bool q4 = t == TensorType::Q4_0;
  s.qs_bytes = q4 ? 128 : 256;
  s.offset = q4 ? 8 : 128;
  s.group_bytes = (s.blocks + PackedQuantShape::kSuper - 1) / PackedQuantShape::kSuper * s.super_bytes();
  return s;
}

void pack_quant_matrix(TensorType t, const uint8_t* src, size_t row_bytes, size_t rows, size_t cols, uint8_t* dst) {
  const PackedQuantShape s = packed_quant_shape(t, rows, cols);
  const bool q4 = t == TensorType::Q4_0;
  const size_t block_bytes = q4 ? 18 : 34, chunks = s.qs_bytes / 32;
  for (size_t r = 0; r < rows; ++r) {
    const size_t i = r % PackedQuantShape::kRows;
    uint8_t* group = dst + (r / PackedQuantShape::kRows) * s.group_bytes;
    for (size_t b = 0; b < s.blocks; ++b) {
      const uint8_t* blk = src + r * row_bytes + b * block_bytes;
      std::memcpy(group + s.scales_at(b) + i * 2, blk, 2);  // fp16 scale as stored
      uint8_t* qs = group + s.qs_at(b);
      for (size_t c = 0; c < chunks; ++c) {
        uint8_t* to = qs + c * 32 + i * 4;
        std::memcpy(to, blk + 2 + c * 4, 4);
        if (!q4) {
          for (size_t k = 0; k < 4; ++k) to[k] ^= 0x80;  // int8 w -> unsigned w + 128
        }
      }
    }
  }
}

int packed_quant_value(TensorType t, const uint8_t* packed, size_t rows, size_t cols, size_t r, size_t c) {
  const PackedQuantShape s = packed_quant_shape(t, rows, cols);
  const size_t i = r % PackedQuantShape::kRows, b = c / 32, j = c % 32;
  const uint8_t* qs = packed + (r / PackedQuantShape::kRows) * s.group_bytes + s.qs_at(b);
  if (t == TensorType::Q4_0) {
    const size_t quad = j / 4 % 4, k = j % 4;  // values 0..15 low nibbles, 16..31 high
    const uint8_t byte = qs[quad * 32 + i * 4 + k];
    return (j < 16 ? byte & 0xF : byte >> 4) - s.offset;
  }
  return qs[(j / 4) * 32 + i * 4 + j % 4] - s.offset;
}

void pack_matrices(std::span<Matrix* const> matrices, const uint8_t* keep_mapped, AlignedBuffer& storage) {
  auto shape = [](const Matrix& m) {
    return packed_quant_shape(m.type, static_cast<size_t>(m.rows), static_cast<size_t>(m.cols));
  };
  size_t total = 0;  // one buffer for all: each shape's size is a multiple of 64 bytes
  for (const Matrix* m : matrices) total += is_packable(m->type) ? shape(*m).bytes() : 0;
  if (total == 0) return;
  storage = AlignedBuffer(total);
  size_t at = 0;
  for (Matrix* m : matrices) {
    if (!is_packable(m->type)) continue;
    const PackedQuantShape s = shape(*m);
    uint8_t* dst = storage.data() + at;
    pack_quant_matrix(m->type, m->data, m->row_bytes, static_cast<size_t>(m->rows), static_cast<size_t>(m->cols), dst);
    m->packed = dst;
    at += s.bytes();
    if (m->data != keep_mapped) MappedFile::release_pages(m->data, m->bytes());
  }
}

}  // namespace h2o
