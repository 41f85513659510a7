// Reading and writing an architecture's hyper-parameters as GGUF metadata keys
// ("<arch>.<key>"), with every value range-checked and named in errors: a missing
// required key, a non-finite or non-positive float, a size out of range, a per-layer
// array whose values differ (not supported) are one-line h2o::Errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model/config.h"

namespace h2o {

class GgufFile;
class GgufWriter;

class GgufArchKeys {
 public:
  static constexpr int64_t kMaxDim = 1 << 20;  // bound on any single model dimension

  GgufArchKeys(const GgufFile& file, std::string_view arch);

  std::string key(std::string_view name) const;  // "<arch>.<name>"
  bool has(std::string_view name) const;
  // A size in [1, kMaxDim]; a per-layer array is accepted when all its values are equal.
  int size(std::string_view name) const;
  int size_or(std::string_view name, int fallback) const;
  // A finite float > 0.
  float positive(std::string_view name) const;
  float positive_or(std::string_view name, float fallback) const;
  bool flag_or(std::string_view name, bool fallback) const;
  std::optional<std::string> string(std::string_view name) const;

  // rope.scaling.type / rope.scaling.factor (and the older rope.scale_linear): the
  // frequency scale 1/factor for `linear`, 1 for none. Other types (yarn, longrope, ...)
  // are refused by name.
  float rope_freq_scale() const;

 private:
  const GgufFile& f_;
  std::string arch_;
};

// Writer side: "<arch>.<name>" keys.
class GgufArchKeyWriter {
 public:
  GgufArchKeyWriter(GgufWriter& w, std::string_view arch) : w_(w), arch_(arch) {}
  void u32(std::string_view name, int64_t v);
  void f32(std::string_view name, float v);
  void flag(std::string_view name, bool v);

 private:
  GgufWriter& w_;
  std::string arch_;
};

}  // namespace h2o
