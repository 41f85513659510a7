#include "format/packed_quant.h"

#include <algorithm>
#include <thread>

#include "common/check.h"
#include "common/thread_pool.h"
#include "format/mapped_file.h"

namespace h2o {
namespace {

using L = PackedLayout;

// Row i's lane of a 32-byte chunk.
uint8_t* lane(uint8_t* chunk, size_t i) { return chunk + 4 * i; }
const uint8_t* lane(const uint8_t* chunk, size_t i) { return chunk + 4 * i; }

// Writes row i's 32 codes into a unit's planes (see the header for the layout).
void put_unit(const IntFormat& f, const uint8_t* code, size_t i, uint8_t* unit) {
  const auto put_p2 = [&](uint8_t* plane, int shift) {
    for (size_t h = 0; h < 2; ++h) {
      for (size_t k = 0; k < 4; ++k) {
        int byte = 0;
        for (size_t p = 0; p < 4; ++p) byte |= ((code[4 * (4 * h + p) + k] >> shift) & 3) << (2 * p);
        lane(plane + L::kChunk * h, i)[k] = static_cast<uint8_t>(byte);
      }
    }
  };
  switch (f.bits) {
    case 2:
    case 3:
      put_p2(unit, 0);
      break;
    case 8:
      for (size_t c = 0; c < 8; ++c) {
        for (size_t k = 0; k < 4; ++k) lane(unit + L::kChunk * c, i)[k] = code[4 * c + k];
      }
      break;
    default:  // 4, 5, 6: the low nibbles in P4
      for (size_t c = 0; c < 4; ++c) {
        for (size_t k = 0; k < 4; ++k) {
          lane(unit + L::kChunk * c, i)[k] =
              static_cast<uint8_t>((code[4 * c + k] & 0xF) | ((code[16 + 4 * c + k] & 0xF) << 4));
        }
      }
  }
  uint8_t* high = unit + L::high_plane_at(f);
  if (f.bits == 6) put_p2(high, 4);
  if (f.bits == 3 || f.bits == 5) {
    const int shift = L::high_shift(f);
    for (size_t k = 0; k < 4; ++k) {
      int byte = 0;
      for (size_t q = 0; q < 8; ++q) byte |= ((code[4 * q + k] >> shift) & 1) << q;
      lane(high, i)[k] = static_cast<uint8_t>(byte);
    }
  }
}

// The inverse of put_unit.
void get_unit(const IntFormat& f, const uint8_t* unit, size_t i, uint8_t* code) {
  for (size_t v = 0; v < 32; ++v) {
    const size_t q = v / 4, k = v % 4;
    int c = 0;
    if (f.bits == 2 || f.bits == 3) {
      c = (lane(unit + L::kChunk * (q / 4), i)[k] >> (2 * (q % 4))) & 3;
    } else if (f.bits == 8) {
      c = lane(unit + L::kChunk * q, i)[k];
    } else {
      const uint8_t byte = lane(unit + L::kChunk * (q % 4), i)[k];
      c = q < 4 ? byte & 0xF : byte >> 4;
    }
    const uint8_t* high = unit + L::high_plane_at(f);
    if (f.bits == 6) c |= ((lane(high + L::kChunk * (q / 4), i)[k] >> (2 * (q % 4))) & 3) << 4;
    if (f.bits == 3 || f.bits == 5) c |= ((lane(high, i)[k] >> q) & 1) << L::high_shift(f);
    code[v] = static_cast<uint8_t>(c);
  }
}

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}
uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Where type block b of row r lives: its packed block, and its first unit there.
struct BlockPlace {
  size_t group_offset;  // of the packed block, from the matrix start
  size_t first_unit;
  size_t i;             // row in the group
};

BlockPlace place(const PackedShape& s, size_t r, size_t b) {
  const size_t bb = L::block_bytes(s.format);
  const bool k = s.format.act == ActKind::Q8_K;
  const size_t pb = k ? b : b / 4;
  return {r / L::kRows * s.group_bytes + pb * bb, k ? 0 : b % 4, r % L::kRows};
}

void pack_block(const TypeInfo& t, const PackedShape& s, const uint8_t* src, size_t r, size_t b, uint8_t* dst) {
  const IntFormat& f = s.format;
  BlockFields bf;
  t.fields(src, bf);
  const BlockPlace at = place(s, r, b);
  uint8_t* blk = dst + at.group_offset;
  const size_t n_units = static_cast<size_t>(f.elems()) / 32;
  for (size_t u = 0; u < n_units; ++u) put_unit(f, bf.code + 32 * u, at.i, blk + L::unit_at(f, at.first_unit + u));
  if (f.act == ActKind::Q8_K) {
    for (size_t j = 0; j < static_cast<size_t>(f.n_sub()); ++j) {
      blk[L::scales_at(f, j / 2) + 2 * at.i + j % 2] = static_cast<uint8_t>(bf.scale[j]);
      if (f.has_min) blk[L::mins_at(f, j / 2) + 2 * at.i + j % 2] = bf.min[j];
    }
    put_u16(blk + L::d_at(f) + 2 * at.i, bf.d);
    if (f.has_min) put_u16(blk + L::dmin_at(f) + 2 * at.i, bf.dmin);
  } else {
    put_u16(blk + L::d32_at(f, at.first_unit) + 2 * at.i, bf.d);
    if (f.has_min) put_u16(blk + L::m32_at(f, at.first_unit) + 2 * at.i, bf.dmin);
  }
}

}  // namespace

bool is_packable(TensorType t) { return traits(t).format.act != ActKind::Float; }

PackedShape packed_shape(TensorType t, size_t rows, size_t cols) {
  const TypeInfo& ti = traits(t);
  if (!is_packable(t) || cols % ti.block_elems != 0) fail("cannot pack a {} matrix of {} columns", ti.name, cols);
  PackedShape s;
  s.format = ti.format;
  s.groups = (rows + L::kRows - 1) / L::kRows;
  s.units = cols / 32;
  s.blocks = (s.units + L::units_per_block(s.format) - 1) / L::units_per_block(s.format);
  s.group_bytes = s.blocks * L::block_bytes(s.format);
  return s;
}

void pack_matrix(TensorType t, const uint8_t* src, size_t row_bytes, size_t rows, size_t cols, uint8_t* dst,
                 ThreadPool& pool) {
  const TypeInfo& ti = traits(t);
  const PackedShape s = packed_shape(t, rows, cols);
  const size_t nb = cols / ti.block_elems;
  pool.parallel_for(
      s.groups,
      [&](size_t g0, size_t g1) {
        for (size_t r = g0 * L::kRows; r < std::min(rows, g1 * L::kRows); ++r) {
          for (size_t b = 0; b < nb; ++b) pack_block(ti, s, src + r * row_bytes + b * ti.block_bytes, r, b, dst);
        }
      },
      rows * cols);
}

void unpack_block(TensorType t, const uint8_t* packed, size_t rows, size_t cols, size_t r, size_t b, BlockFields& out) {
  const PackedShape s = packed_shape(t, rows, cols);
  const IntFormat& f = s.format;
  const BlockPlace at = place(s, r, b);
  const uint8_t* blk = packed + at.group_offset;
  out = BlockFields{};
  const size_t n_units = static_cast<size_t>(f.elems()) / 32;
  for (size_t u = 0; u < n_units; ++u) get_unit(f, blk + L::unit_at(f, at.first_unit + u), at.i, out.code + 32 * u);
  if (f.act == ActKind::Q8_K) {
    for (size_t j = 0; j < static_cast<size_t>(f.n_sub()); ++j) {
      out.scale[j] = static_cast<int8_t>(blk[L::scales_at(f, j / 2) + 2 * at.i + j % 2]);
      if (f.has_min) out.min[j] = blk[L::mins_at(f, j / 2) + 2 * at.i + j % 2];
    }
    out.d = get_u16(blk + L::d_at(f) + 2 * at.i);
    if (f.has_min) out.dmin = get_u16(blk + L::dmin_at(f) + 2 * at.i);
  } else {
    out.d = get_u16(blk + L::d32_at(f, at.first_unit) + 2 * at.i);
    if (f.has_min) out.dmin = get_u16(blk + L::m32_at(f, at.first_unit) + 2 * at.i);
  }
}

void pack_matrices(std::span<Matrix* const> matrices, const uint8_t* keep_mapped, AlignedBuffer& storage) {
  auto shape = [](const Matrix& m) {
    return packed_shape(m.type, static_cast<size_t>(m.rows), static_cast<size_t>(m.cols));
  };
  size_t total = 0;  // one buffer for all: each shape's size is a multiple of 32 bytes
  for (const Matrix* m : matrices) total += is_packable(m->type) ? shape(*m).bytes() : 0;
  if (total == 0) return;
  storage = AlignedBuffer(total);
  // Groups are independent: pack them on every core (the result is the same).
  ThreadPool pool(static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u)));
  size_t at = 0;
  for (Matrix* m : matrices) {
    if (!is_packable(m->type)) continue;
    uint8_t* dst = storage.data() + at;
    pack_matrix(m->type, m->data, m->row_bytes, static_cast<size_t>(m->rows), static_cast<size_t>(m->cols), dst, pool);
    m->packed = dst;
    at += shape(*m).bytes();
    if (m->data != keep_mapped) MappedFile::release_pages(m->data, m->bytes());
  }
}

}  // namespace h2o
