// A view of a 2-D weight tensor in its stored type, the unit the matrix kernels take.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/tensor_type.h"

namespace h2o {

// A weight matrix of `rows` output features by `cols` input features, row-major in its
// storage type: row r starts at data + r * row_bytes. (GGUF ne = [cols, rows].)
// Q8_0 and Q4_0 matrices of a loaded model also have `packed`: the same values in the
// row-interleaved layout of format/packed_quant.h that the matrix products read.
struct Matrix {
  TensorType type = TensorType::F32;
  int rows = 0;
  int cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  const uint8_t* packed = nullptr;  // 64-byte aligned; null: matmul packs a copy per call

  const uint8_t* row(int r) const { return data + static_cast<size_t>(r) * row_bytes; }
  size_t bytes() const { return row_bytes * static_cast<size_t>(rows); }
};

}  // namespace h2o
