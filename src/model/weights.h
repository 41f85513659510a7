// A model's weights, indexed by role (model/tensor_role.h). Matrices are views into the
// model file's mapping (format/matrix.h); vectors (norms, biases, RoPE factors) are f32
// pointers, into the mapping when stored as f32, else decoded once at load. Copies made
// at load: decoded vectors, Q8_0/Q4_0 matrices repacked for the integer kernels (their
// pages of the mapping are then released), and tensors an architecture transforms when
// reading a Hugging Face checkpoint (e.g. q/k row order).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

#include "common/aligned_buffer.h"
#include "format/matrix.h"
#include "model/tensor_role.h"

namespace h2o {

// Role-indexed tensors of one scope (the model, or one layer). An absent tensor has a
// null matrix data pointer and a null vector.
template <typename Role, size_t N>
struct RoleTensors {
  std::array<Matrix, N> matrices{};
  std::array<const float*, N> vectors{};

  const Matrix& mat(Role r) const { return matrices[static_cast<size_t>(r)]; }
  Matrix& mat(Role r) { return matrices[static_cast<size_t>(r)]; }
  const float* vec(Role r) const { return vectors[static_cast<size_t>(r)]; }
  const float*& vec(Role r) { return vectors[static_cast<size_t>(r)]; }
  bool has(Role r) const { return mat(r).data != nullptr || vec(r) != nullptr; }
};

using LayerWeights = RoleTensors<LayerRole, kLayerRoles>;

struct ModelWeights : RoleTensors<ModelRole, kModelRoles> {
  std::vector<LayerWeights> layers;  // [n_layers]
  // Storage for vectors that were not f32 in the file.
  std::vector<std::vector<float>> decoded;
  // Storage for tensors transformed at load (HF checkpoints), kept alive here.
  std::vector<AlignedBuffer> owned;
  // Storage of the packed Q8_0/Q4_0 matrices, one after another (Matrix::packed points here).
  AlignedBuffer packed;

  // The matrices used in matrix products (every layer's, the projections, the head even
  // when tied: its own Matrix is packed while the embedding's rows are looked up as stored).
  std::vector<Matrix*> product_matrices();
  size_t weight_bytes() const;  // bytes of all matrices as stored (tied output counted once)
};

}  // namespace h2o
