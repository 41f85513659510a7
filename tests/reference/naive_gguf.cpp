#include "reference/naive_gguf.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace h2o::ref {
namespace {

class Cursor {
 public:
  Cursor(const std::vector<uint8_t>& b, const std::string& path) : b_(b), path_(path) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, &b_[at_], sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(&b_[at_]), n);
    at_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    at_ += n;
  }
  size_t at() const { return at_; }

 private:
  void need(uint64_t n) const {
    if (n > b_.size() - at_) throw std::runtime_error("naive gguf: truncated " + path_);
  }
  const std::vector<uint8_t>& b_;
  std::string path_;
  size_t at_ = 0;
};

// Size of one scalar of a GGUF value type; 0 for strings and arrays.
size_t scalar_size(uint32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;   // u8 i8 bool
    case 2: case 3: return 2;           // u16 i16
    case 4: case 5: case 6: return 4;   // u32 i32 f32
    case 10: case 11: case 12: return 8;  // u64 i64 f64
    default: return 0;
  }
}

double read_number(Cursor& c, uint32_t t) {
  switch (t) {
    case 0: return c.get<uint8_t>();
    case 1: return c.get<int8_t>();
    case 2: return c.get<uint16_t>();
    case 3: return c.get<int16_t>();
    case 4: return c.get<uint32_t>();
    case 5: return c.get<int32_t>();
    case 6: return c.get<float>();
    case 7: return c.get<uint8_t>() != 0;
    case 10: return static_cast<double>(c.get<uint64_t>());
    case 11: return static_cast<double>(c.get<int64_t>());
    case 12: return c.get<double>();
    default: throw std::runtime_error("naive gguf: bad value type");
  }
}

}  // namespace

double half_to_double(uint16_t h) {
  const int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(frac, -24);  // subnormal: frac * 2^-14 / 1024
  } else if (exp == 31) {
    v = frac ? NAN : INFINITY;
  } else {
    v = std::ldexp(1024 + frac, exp - 25);  // (1 + frac/1024) * 2^(exp-15)
  }
  return sign ? -v : v;
}

double bf16_to_double(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

NaiveGguf::NaiveGguf(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("naive gguf: cannot open " + path);
  bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  Cursor c(bytes_, path);
  if (c.get<uint32_t>() != 0x46554747u) throw std::runtime_error("naive gguf: not a GGUF file " + path);
  c.get<uint32_t>();  // version
  const uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    const uint32_t t = c.get<uint32_t>();
    if (t == 8) {
      meta_[key] = c.str();
    } else if (t == 9) {
      const uint32_t et = c.get<uint32_t>();
      const uint64_t n = c.get<uint64_t>();
      array_sizes_[key] = n;
      if (et == 8) {
        for (uint64_t j = 0; j < n; ++j) c.str();
      } else if (scalar_size(et) > 0) {
        c.skip(n * scalar_size(et));
      } else {
        throw std::runtime_error("naive gguf: nested arrays are not expected in " + path);
      }
    } else {
      meta_[key] = read_number(c, t);
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = c.str();
    Info info;
    const uint32_t dims = c.get<uint32_t>();
    for (uint32_t d = 0; d < dims; ++d) info.ne.push_back(c.get<uint64_t>());
    info.type = c.get<uint32_t>();
    info.offset = c.get<uint64_t>();
    tensors_[name] = info;
  }
  const size_t align = static_cast<size_t>(number_or("general.alignment", 32));
  data_start_ = (c.at() + align - 1) / align * align;
}

std::optional<double> NaiveGguf::number(const std::string& key) const {
  const auto it = meta_.find(key);
  if (it == meta_.end() || !std::holds_alternative<double>(it->second)) return std::nullopt;
  return std::get<double>(it->second);
}

std::optional<std::string> NaiveGguf::string(const std::string& key) const {
  const auto it = meta_.find(key);
  if (it == meta_.end() || !std::holds_alternative<std::string>(it->second)) return std::nullopt;
  return std::get<std::string>(it->second);
}

double NaiveGguf::number_or(const std::string& key, double fallback) const { return number(key).value_or(fallback); }

double NaiveGguf::require_number(const std::string& key) const {
  const auto v = number(key);
  if (!v) throw std::runtime_error("naive gguf: missing key " + key + " in " + path_);
  return *v;
}

size_t NaiveGguf::array_size(const std::string& key) const {
  const auto it = array_sizes_.find(key);
  return it == array_sizes_.end() ? 0 : it->second;
}

std::vector<double> NaiveGguf::tensor(const std::string& name, std::vector<uint64_t>* ne) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::runtime_error("naive gguf: missing tensor " + name + " in " + path_);
  const Info& info = it->second;
  uint64_t n = 1;
  for (uint64_t d : info.ne) n *= d;
  const size_t elem = info.type == 0 ? 4 : (info.type == 1 || info.type == 30) ? 2 : 0;
  if (elem == 0) throw std::runtime_error("naive gguf: tensor " + name + " is not F32/F16/BF16");
  const size_t at = data_start_ + info.offset;
  if (at > bytes_.size() || n * elem > bytes_.size() - at) throw std::runtime_error("naive gguf: tensor out of file");
  std::vector<double> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t* p = &bytes_[at + i * elem];
    if (info.type == 0) {
      float f;
      std::memcpy(&f, p, 4);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, p, 2);
      out[i] = info.type == 1 ? half_to_double(h) : bf16_to_double(h);
    }
  }
  if (ne) *ne = info.ne;
  return out;
}

}  // namespace h2o::ref
