#include "model/gguf_config.h"

#include <cmath>

#include "common/check.h"
#include "format/gguf.h"

namespace h2o {

GgufArchKeys::GgufArchKeys(const GgufFile& file, std::string_view arch) : f_(file), arch_(arch) {}

std::string GgufArchKeys::key(std::string_view name) const { return arch_ + "." + std::string(name); }

bool GgufArchKeys::has(std::string_view name) const { return f_.find(key(name)) != nullptr; }

int GgufArchKeys::size(std::string_view name) const {
  const std::string k = key(name);
  const GgufValue* v = f_.find(k);
  if (!v) fail("{}: missing metadata key {}", f_.source_name(), k);
  int64_t value = 0;
  if (v->type == GgufValueType::ARRAY) {
    const GgufArray& a = v->as_array(k);
    if (a.items.empty()) fail("{}: {} is an empty array", f_.source_name(), k);
    value = a.items[0].as_int(k);
    for (size_t i = 1; i < a.items.size(); ++i) {
      if (a.items[i].as_int(k) != value) fail("{}: {} differs between layers, which is not supported", f_.source_name(), k);
    }
  } else {
    value = v->as_int(k);
  }
  if (value < 1 || value > kMaxDim) fail("{}: {} = {} is out of range", f_.source_name(), k, value);
  return static_cast<int>(value);
}

int GgufArchKeys::size_or(std::string_view name, int fallback) const { return has(name) ? size(name) : fallback; }

float GgufArchKeys::positive(std::string_view name) const {
  const std::string k = key(name);
  const GgufValue* v = f_.find(k);
  if (!v) fail("{}: missing metadata key {}", f_.source_name(), k);
  const double d = v->as_float(k);
  if (!std::isfinite(d) || !(d > 0.0) || d > 3.0e38)
    fail("{}: {} = {} must be a finite positive number", f_.source_name(), k, d);
  return static_cast<float>(d);
}

float GgufArchKeys::positive_or(std::string_view name, float fallback) const {
  return has(name) ? positive(name) : fallback;
}

bool GgufArchKeys::flag_or(std::string_view name, bool fallback) const {
  const std::string k = key(name);
  const GgufValue* v = f_.find(k);
  return v ? v->as_bool(k) : fallback;
}

std::optional<std::string> GgufArchKeys::string(std::string_view name) const {
  const std::string k = key(name);
  const GgufValue* v = f_.find(k);
  if (!v) return std::nullopt;
  return v->as_string(k);
}

float GgufArchKeys::rope_freq_scale() const {
  const std::optional<std::string> type = string("rope.scaling.type");
  float factor = 0.0f;
  if (has("rope.scaling.factor")) {
    factor = positive("rope.scaling.factor");
  } else if (has("rope.scale_linear")) {
    factor = positive("rope.scale_linear");
  }
  if (type && *type != "none" && *type != "linear")
    fail("{}: RoPE scaling type '{}' ({}) is not supported (supported: none, linear)", f_.source_name(),
         printable_string(*type), key("rope.scaling.type"));
  if (type && *type == "none") return 1.0f;
  return factor > 0.0f ? 1.0f / factor : 1.0f;
}

void GgufArchKeyWriter::u32(std::string_view name, int64_t v) {
  w_.set_u32(arch_ + "." + std::string(name), static_cast<uint32_t>(v));
}
void GgufArchKeyWriter::f32(std::string_view name, float v) { w_.set_f32(arch_ + "." + std::string(name), v); }
void GgufArchKeyWriter::flag(std::string_view name, bool v) { w_.set_bool(arch_ + "." + std::string(name), v); }

}  // namespace h2o
