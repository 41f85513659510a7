#include "format/gguf.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "common/check.h"
#include "common/printable.h"
#include "format/mapped_file.h"

namespace h2o {

// The readers below copy little-endian fields straight into native integers.
static_assert(std::endian::native == std::endian::little, "h2o assumes a little-endian host");

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // the bytes "GGUF" read as little-endian u32
constexpr uint32_t kWriteVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr size_t kMaxNameBytes = 64;  // ggml's GGML_MAX_NAME: names must be shorter
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;     // deeper nesting is certainly hostile and risks the stack
constexpr uint32_t kNumValueTypes = 13;
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Smallest possible encodings, used to reject impossible counts before allocating.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // key length, value type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset
// What parsed metadata and tensor infos may hold in memory: kMemoryPerFileByte bytes per
// byte of the file plus a fixed allowance. Real files stay far below (their metadata is a
// small part of them, and stored compactly it takes at most a few times its bytes); the
// bound stops files made of the smallest possible entries (each costs a map node, a key and
// a value) from multiplying their size.
constexpr uint64_t kMemoryPerFileByte = 8;
constexpr uint64_t kMemoryAllowance = uint64_t{16} << 20;
constexpr uint64_t kMapNodeBytes = 48;  // a std::map node's links and colour, with allocator overhead

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Rounds up to a multiple of a power-of-two alignment; callers keep `v` far below 2^63.
uint64_t align_up(uint64_t v, uint64_t alignment) { return (v + alignment - 1) & ~(alignment - 1); }

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

// Encoded size of a scalar value type; 0 for STRING and ARRAY (variable length).
uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY:
      return 0;
  }
  return 0;
}

// Fewest bytes one value of type `t` can occupy in a file.
uint64_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::STRING) return 8;       // u64 length, empty string
  if (t == GgufValueType::ARRAY) return 4 + 8;    // elem type, count, no items
  return scalar_size(t);
}

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}

bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}

bool is_float_type(GgufValueType t) {
  return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64;
}

[[noreturn]] void type_error(const std::string& key, GgufValueType t, std::string_view expected) {
  fail("metadata key '{}' has type {}, expected {}", key, gguf_value_type_name(t), expected);
}

// ---- display helpers -------------------------------------------------------------------

// Quoted, escaped rendering of a string, cut after about `max_bytes` input bytes.
std::string quote_string(std::string_view s, size_t max_bytes) {
  std::string out = "\"";
  const size_t used = append_printable(out, s, max_bytes);
  out += '"';
  if (used < s.size()) out += fmt::format("...({} bytes)", s.size());
  return out;
}

std::string display_value(const GgufValue& v, size_t max_items, bool in_array);

std::string display_array(const GgufArray& a, size_t max_items) {
  std::string out = "[";
  const size_t shown = std::min(a.items.size(), max_items);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    out += display_value(a.items[i], max_items, true);
  }
  if (shown < a.items.size()) {
    out += fmt::format("{}... ({} items)", shown > 0 ? ", " : "", a.items.size());
  }
  out += "]";
  return out;
}

std::string display_value(const GgufValue& v, size_t max_items, bool in_array) {
  // Strings in arrays (vocabularies) are cut shorter than single strings (templates).
  const size_t max_string_bytes = in_array ? 32 : 200;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return fmt::format("{}", *u);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v.value)) {
    // FLOAT32 values print at float precision (1e-05, not 9.99999974737875e-06).
    if (v.type == GgufValueType::FLOAT32) return fmt::format("{}", static_cast<float>(*d));
    return fmt::format("{}", *d);
  }
  if (const auto* b = std::get_if<bool>(&v.value)) return *b ? "true" : "false";
  if (const auto* s = std::get_if<std::string>(&v.value)) return quote_string(*s, max_string_bytes);
  return display_array(std::get<GgufArray>(v.value), max_items);
}

// ---- reading ---------------------------------------------------------------------------

// Sequential little-endian reader over the file bytes. Every read first checks that the
// bytes exist; every failure names the file, the field and the offset.
class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const std::string& name)
      : bytes_(bytes), name_(name), budget_(kMemoryPerFileByte * bytes.size() + kMemoryAllowance) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  // What is being parsed (`metadata entry 3 "general.name"`), for error messages.
  void set_context(std::string context) { context_ = std::move(context); }

  template <typename... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) const {
    const std::string msg = fmt::format(f, std::forward<Args>(args)...);
    if (context_.empty()) fail("{}: {}", name_, msg);
    fail("{}: {}: {}", name_, context_, msg);
  }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      error("file truncated: {} needs {} bytes at offset {} but only {} remain", what, n, pos_,
            remaining());
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // The next `n` bytes (checked), consumed.
  std::span<const uint8_t> take(uint64_t n, std::string_view what) {
    need(n, what);
    const auto out = bytes_.subspan(static_cast<size_t>(pos_), static_cast<size_t>(n));
    pos_ += n;
    return out;
  }

  // Records `n` bytes of memory the parsed metadata and tensor table will hold, before
  // they are allocated: more than the budget for this file size is refused, so no file
  // can make the reader allocate far beyond its own size.
  void charge(uint64_t n, std::string_view what) {
    charged_ += n;
    if (charged_ > budget_) {
      error(
          "{} would bring the parsed metadata and tensor table to more than {} bytes of memory ({} per file "
          "byte + {} MiB); refusing the file",
          what, budget_, kMemoryPerFileByte, kMemoryAllowance >> 20);
    }
  }

  std::string read_string(std::string_view what) {
    const auto len = read<uint64_t>(what);
    if (len > remaining()) {
      error("{} has length {}, more than the {} bytes left in the file (offset {})", what, len,
            remaining(), pos_);
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  std::string context_;
  uint64_t pos_ = 0;
  uint64_t budget_;
  uint64_t charged_ = 0;
};

GgufValueType read_value_type(Reader& r, std::string_view what) {
  const auto raw = r.read<uint32_t>(what);
  if (raw >= kNumValueTypes) r.error("unknown {} {}", what, raw);
  return static_cast<GgufValueType>(raw);
}

GgufValue read_value(Reader& r, GgufValueType t, int depth);

// Memory one parsed string holds beyond its std::string (heap bytes past the small-string buffer).
uint64_t string_heap_bytes(uint64_t len) { return len >= sizeof(std::string) / 2 ? len + 1 : 0; }

GgufArray read_array(Reader& r, int depth) {
  if (depth > kMaxArrayDepth) r.error("arrays nested more than {} deep", kMaxArrayDepth);
  GgufArray a;
  a.elem_type = read_value_type(r, "array element type");
  const auto count = r.read<uint64_t>("array length");
  // Each element occupies at least min_encoded_size bytes, so a count that cannot fit in
  // the rest of the file is rejected here, before anything is allocated for it.
  const uint64_t min_size = min_encoded_size(a.elem_type);
  if (count > r.remaining() / min_size) {
    r.error("array of {} {} elements cannot fit in the {} bytes left in the file (offset {})",
            count, gguf_value_type_name(a.elem_type), r.remaining(), r.pos());
  }
  const auto n = static_cast<size_t>(count);
  if (const uint64_t size = scalar_size(a.elem_type); size > 0) {
    // Scalars are kept as the file's bytes: one copy, no per-item objects.
    r.charge(count * size, "array");
    const std::span<const uint8_t> bytes = r.take(count * size, "array items");
    if (a.elem_type == GgufValueType::BOOL) {
      for (size_t i = 0; i < n; ++i) {
        if (bytes[i] > 1) r.error("BOOL value {} at offset {} is not 0 or 1", bytes[i], r.pos() - count + i);
      }
    }
    a.items.append_scalars(a.elem_type, bytes, n);
  } else if (a.elem_type == GgufValueType::STRING) {
    r.charge(count * sizeof(std::string), "array");
    a.items.reserve(a.elem_type, n);
    for (size_t i = 0; i < n; ++i) {
      std::string item = r.read_string("string value");
      r.charge(string_heap_bytes(item.size()), "array string");
      a.items.push_string(std::move(item));
    }
  } else {
    r.charge(count * sizeof(GgufArray), "array");
    a.items.reserve(a.elem_type, n);
    for (size_t i = 0; i < n; ++i) a.items.push_array(read_array(r, depth + 1));
  }
  return a;
}

GgufValue read_value(Reader& r, GgufValueType t, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::UINT8: v.value = uint64_t{r.read<uint8_t>("UINT8 value")}; break;
    case GgufValueType::INT8: v.value = int64_t{r.read<int8_t>("INT8 value")}; break;
    case GgufValueType::UINT16: v.value = uint64_t{r.read<uint16_t>("UINT16 value")}; break;
    case GgufValueType::INT16: v.value = int64_t{r.read<int16_t>("INT16 value")}; break;
    case GgufValueType::UINT32: v.value = uint64_t{r.read<uint32_t>("UINT32 value")}; break;
    case GgufValueType::INT32: v.value = int64_t{r.read<int32_t>("INT32 value")}; break;
    case GgufValueType::UINT64: v.value = r.read<uint64_t>("UINT64 value"); break;
    case GgufValueType::INT64: v.value = r.read<int64_t>("INT64 value"); break;
    case GgufValueType::FLOAT32: v.value = double{r.read<float>("FLOAT32 value")}; break;
    case GgufValueType::FLOAT64: v.value = r.read<double>("FLOAT64 value"); break;
    case GgufValueType::BOOL: {
      const auto b = r.read<uint8_t>("BOOL value");
      if (b > 1) r.error("BOOL value {} at offset {} is not 0 or 1", b, r.pos() - 1);
      v.value = b == 1;
      break;
    }
    case GgufValueType::STRING: {
      std::string str = r.read_string("string value");
      r.charge(string_heap_bytes(str.size()), "string value");
      v.value = std::move(str);
      break;
    }
    case GgufValueType::ARRAY: v.value = read_array(r, depth); break;
  }
  return v;
}

uint32_t read_version(Reader& r) {
  const auto version = r.read<uint32_t>("version");
  if (version == 2 || version == 3) return version;
  if (version == 1) {
    r.error("GGUF version 1 is not supported (this reader handles versions 2 and 3)");
  }
  // gguf.cpp's own heuristic: a byte-swapped small version has zero low bits.
  if (version != 0 && (version & 0xFFFF) == 0) {
    r.error("version field {:#x} looks byte-swapped: big-endian GGUF files are not supported",
            version);
  }
  r.error("unsupported GGUF version {} (this reader handles versions 2 and 3)", version);
}

std::string magic_display(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t i = 0; i < 4; ++i) out += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  return out;
}

// Element count and byte size of a tensor, with every multiplication overflow-checked.
void compute_sizes(Reader& r, const TypeTraits& tr, GgufTensor& t) {
  if (t.ne[0] % tr.block_elems != 0) {
    r.error("ne[0] = {} is not a multiple of the {} block size {}", t.ne[0], tr.name,
            tr.block_elems);
  }
  uint64_t elems = 1;
  uint64_t bytes = 0;
  // A wrapped byte size would let a huge tensor pass the bounds check as a small one.
  if (!checked_mul(t.ne[0] / tr.block_elems, tr.block_bytes, &bytes)) {
    r.error("byte size overflows (shape too large)");
  }
  for (size_t d = 0; d < t.ne.size(); ++d) {
    if (!checked_mul(elems, t.ne[d], &elems) || elems > kInt64Max) {
      r.error("element count overflows (shape too large)");
    }
    if (d > 0 && !checked_mul(bytes, t.ne[d], &bytes)) {
      r.error("byte size overflows (shape too large)");
    }
  }
  t.n_elements = elems;
  t.n_bytes = bytes;
}

GgufTensor read_tensor_info(Reader& r, uint64_t index) {
  r.set_context(fmt::format("tensor {}", index));
  GgufTensor t;
  t.name = r.read_string("tensor name");
  r.set_context(fmt::format("tensor {} {}", index, quote_string(t.name, 80)));
  if (t.name.size() >= kMaxNameBytes) {
    r.error("name is {} bytes long; tensor names must be shorter than {} bytes", t.name.size(),
            kMaxNameBytes);
  }
  const auto n_dims = r.read<uint32_t>("n_dims");
  if (n_dims == 0 || n_dims > kMaxDims) r.error("n_dims is {}, must be 1 to {}", n_dims, kMaxDims);
  t.ne.resize(n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) {
    t.ne[d] = r.read<uint64_t>("dimension");
    if (t.ne[d] > kInt64Max) r.error("ne[{}] = {} is beyond the int64 range", d, t.ne[d]);
  }
  const auto type_id = r.read<uint32_t>("tensor type");
  const auto tr = type_traits(type_id);
  if (!tr) r.error("unsupported tensor type {}", type_name(type_id));
  t.type = tr->type;
  t.offset = r.read<uint64_t>("tensor data offset");
  compute_sizes(r, *tr, t);
  return t;
}

}  // namespace

// ---- value types ---------------------------------------------------------------------------

std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "UINT8";
    case GgufValueType::INT8: return "INT8";
    case GgufValueType::UINT16: return "UINT16";
    case GgufValueType::INT16: return "INT16";
    case GgufValueType::UINT32: return "UINT32";
    case GgufValueType::INT32: return "INT32";
    case GgufValueType::FLOAT32: return "FLOAT32";
    case GgufValueType::BOOL: return "BOOL";
    case GgufValueType::STRING: return "STRING";
    case GgufValueType::ARRAY: return "ARRAY";
    case GgufValueType::UINT64: return "UINT64";
    case GgufValueType::INT64: return "INT64";
    case GgufValueType::FLOAT64: return "FLOAT64";
  }
  return "UNKNOWN";
}

bool GgufValue::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }

int64_t GgufValue::as_int(const std::string& key_for_errors) const {
  if (const auto* u = std::get_if<uint64_t>(&value); u && is_unsigned_type(type)) {
    if (*u > kInt64Max) fail("metadata key '{}': value {} is too large", key_for_errors, *u);
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value); i && is_signed_type(type)) return *i;
  type_error(key_for_errors, type, "an integer");
}

double GgufValue::as_float(const std::string& key_for_errors) const {
  if (const auto* d = std::get_if<double>(&value); d && is_float_type(type)) return *d;
  if (is_integer()) return static_cast<double>(as_int(key_for_errors));
  type_error(key_for_errors, type, "a number");
}

const std::string& GgufValue::as_string(const std::string& key_for_errors) const {
  if (const auto* s = std::get_if<std::string>(&value); s && type == GgufValueType::STRING) {
    return *s;
  }
  type_error(key_for_errors, type, "STRING");
}

const GgufArray& GgufValue::as_array(const std::string& key_for_errors) const {
  if (const auto* a = std::get_if<GgufArray>(&value); a && type == GgufValueType::ARRAY) return *a;
  type_error(key_for_errors, type, "ARRAY");
}

bool GgufValue::as_bool(const std::string& key_for_errors) const {
  if (const auto* b = std::get_if<bool>(&value); b && type == GgufValueType::BOOL) return *b;
  type_error(key_for_errors, type, "BOOL");
}

std::string GgufValue::to_display_string(size_t max_items) const {
  return display_value(*this, max_items, false);
}

// ---- array items ---------------------------------------------------------------------------

namespace {

// A scalar item decoded from its little-endian bytes.
GgufValue decode_scalar(GgufValueType t, const uint8_t* p) {
  const auto get = [p]<typename T>(T) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  };
  switch (t) {
    case GgufValueType::UINT8:
      return {t, uint64_t{get(uint8_t{})}};
    case GgufValueType::INT8:
      return {t, int64_t{get(int8_t{})}};
    case GgufValueType::UINT16:
      return {t, uint64_t{get(uint16_t{})}};
    case GgufValueType::INT16:
      return {t, int64_t{get(int16_t{})}};
    case GgufValueType::UINT32:
      return {t, uint64_t{get(uint32_t{})}};
    case GgufValueType::INT32:
      return {t, int64_t{get(int32_t{})}};
    case GgufValueType::UINT64:
      return {t, get(uint64_t{})};
    case GgufValueType::INT64:
      return {t, get(int64_t{})};
    case GgufValueType::FLOAT32:
      return {t, double{get(float{})}};
    case GgufValueType::FLOAT64:
      return {t, get(double{})};
    case GgufValueType::BOOL:
      return {t, get(uint8_t{}) != 0};
    case GgufValueType::STRING:
    case GgufValueType::ARRAY:
      break;
  }
  fail("GgufItems: {} is not a scalar type", gguf_value_type_name(t));
}

// Little-endian bytes of a scalar value; throws if the value does not hold a valid `T`.
template <typename T, typename Stored>
void append_le(std::vector<uint8_t>& out, const GgufValue& v) {
  const auto* x = std::get_if<Stored>(&v.value);
  bool ok = x != nullptr;
  if constexpr (std::is_integral_v<T>) ok = ok && std::in_range<T>(*x);
  if (!ok) fail("GgufItems: item does not hold a valid {}", gguf_value_type_name(v.type));
  const T t = static_cast<T>(*x);
  uint8_t b[sizeof(T)];
  std::memcpy(b, &t, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

}  // namespace

GgufValueType GgufItem::type() const { return items_->type_; }

bool GgufItem::is_integer() const { return is_unsigned_type(type()) || is_signed_type(type()); }

GgufValue GgufItem::value() const {
  const GgufItems& it = *items_;
  if (it.type_ == GgufValueType::STRING) return {it.type_, it.strings_.at(index_)};
  if (it.type_ == GgufValueType::ARRAY) return {it.type_, it.arrays_.at(index_)};
  const uint64_t size = scalar_size(it.type_);
  if (index_ >= it.count_) throw std::out_of_range("GgufItems: index out of range");
  return decode_scalar(it.type_, it.raw_.data() + index_ * size);
}

GgufItem::operator GgufValue() const { return value(); }

// Scalars decode to a GgufValue (no allocation) and share its checks; strings and arrays
// are returned in place.
int64_t GgufItem::as_int(const std::string& key_for_errors) const {
  if (!is_integer()) type_error(key_for_errors, type(), "an integer");
  return value().as_int(key_for_errors);
}

double GgufItem::as_float(const std::string& key_for_errors) const {
  if (!is_integer() && !is_float_type(type())) type_error(key_for_errors, type(), "a number");
  return value().as_float(key_for_errors);
}

bool GgufItem::as_bool(const std::string& key_for_errors) const {
  if (type() != GgufValueType::BOOL) type_error(key_for_errors, type(), "BOOL");
  return value().as_bool(key_for_errors);
}

const std::string& GgufItem::as_string(const std::string& key_for_errors) const {
  if (type() != GgufValueType::STRING) type_error(key_for_errors, type(), "STRING");
  return items_->strings_.at(index_);
}

const GgufArray& GgufItem::as_array(const std::string& key_for_errors) const {
  if (type() != GgufValueType::ARRAY) type_error(key_for_errors, type(), "ARRAY");
  return items_->arrays_.at(index_);
}

GgufItem GgufItems::at(size_t i) const {
  if (i >= count_) throw std::out_of_range("GgufItems::at: index out of range");
  return GgufItem(*this, i);
}

void GgufItems::set_type(GgufValueType t) {
  if (count_ > 0 && t != type_)
    fail("GgufItems: array items must share one type ({} item after {} items)", gguf_value_type_name(t),
         gguf_value_type_name(type_));
  type_ = t;
}

void GgufItems::push_back(const GgufValue& v) {
  set_type(v.type);
  switch (v.type) {
    case GgufValueType::UINT8:
      append_le<uint8_t, uint64_t>(raw_, v);
      break;
    case GgufValueType::UINT16:
      append_le<uint16_t, uint64_t>(raw_, v);
      break;
    case GgufValueType::UINT32:
      append_le<uint32_t, uint64_t>(raw_, v);
      break;
    case GgufValueType::UINT64:
      append_le<uint64_t, uint64_t>(raw_, v);
      break;
    case GgufValueType::INT8:
      append_le<int8_t, int64_t>(raw_, v);
      break;
    case GgufValueType::INT16:
      append_le<int16_t, int64_t>(raw_, v);
      break;
    case GgufValueType::INT32:
      append_le<int32_t, int64_t>(raw_, v);
      break;
    case GgufValueType::INT64:
      append_le<int64_t, int64_t>(raw_, v);
      break;
    case GgufValueType::FLOAT32:
      append_le<float, double>(raw_, v);
      break;
    case GgufValueType::FLOAT64:
      append_le<double, double>(raw_, v);
      break;
    case GgufValueType::BOOL: {
      const auto* b = std::get_if<bool>(&v.value);
      if (b == nullptr) fail("GgufItems: item does not hold a valid BOOL");
      raw_.push_back(*b ? 1 : 0);
      break;
    }
    case GgufValueType::STRING: {
      const auto* str = std::get_if<std::string>(&v.value);
      if (str == nullptr) fail("GgufItems: item does not hold a valid STRING");
      strings_.push_back(*str);
      break;
    }
    case GgufValueType::ARRAY: {
      const auto* a = std::get_if<GgufArray>(&v.value);
      if (a == nullptr) fail("GgufItems: item does not hold a valid ARRAY");
      arrays_.push_back(*a);
      break;
    }
  }
  ++count_;
}

void GgufItems::append_scalars(GgufValueType t, std::span<const uint8_t> bytes, size_t count) {
  if (scalar_size(t) == 0 || bytes.size() != count * scalar_size(t))
    fail("GgufItems: {} bytes are not {} {} items", bytes.size(), count, gguf_value_type_name(t));
  set_type(t);
  raw_.insert(raw_.end(), bytes.begin(), bytes.end());
  count_ += count;
}

void GgufItems::push_string(std::string s) {
  set_type(GgufValueType::STRING);
  strings_.push_back(std::move(s));
  ++count_;
}

void GgufItems::push_array(GgufArray a) {
  set_type(GgufValueType::ARRAY);
  arrays_.push_back(std::move(a));
  ++count_;
}

void GgufItems::reserve(GgufValueType t, size_t n) {
  set_type(t);
  if (t == GgufValueType::STRING) {
    strings_.reserve(n);
  } else if (t == GgufValueType::ARRAY) {
    arrays_.reserve(n);
  } else {
    raw_.reserve(n * scalar_size(t));
  }
}

// ---- GgufFile ------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  GgufFile g = parse(file->bytes(), path);
  g.file_ = std::move(file);
  return g;
}


namespace {

struct Counts {
  uint64_t tensors = 0;
  uint64_t kvs = 0;
};

// Both counts are checked against the bytes left, so neither can drive a huge loop or
// allocation: every entry needs a minimum number of bytes.
Counts read_counts(Reader& r) {
  Counts c;
  c.tensors = r.read<uint64_t>("tensor count");
  c.kvs = r.read<uint64_t>("metadata count");
  const uint64_t left = r.remaining();
  if (c.kvs > left / kMinKvBytes) {
    r.error("file truncated or corrupt: metadata count {} needs at least {} bytes per entry but "
            "only {} bytes follow the header",
            c.kvs, kMinKvBytes, left);
  }
  if (c.tensors > left / kMinTensorInfoBytes) {
    r.error("file truncated or corrupt: tensor count {} needs at least {} bytes per entry but "
            "only {} bytes follow the header",
            c.tensors, kMinTensorInfoBytes, left);
  }
  if (c.kvs * kMinKvBytes + c.tensors * kMinTensorInfoBytes > left) {
    r.error("file truncated or corrupt: metadata count {} and tensor count {} cannot fit in the "
            "{} bytes that follow the header",
            c.kvs, c.tensors, left);
  }
  return c;
}

void read_metadata(Reader& r, uint64_t count, std::map<std::string, GgufValue>& metadata,
                   std::vector<std::string>& key_order) {
  for (uint64_t i = 0; i < count; ++i) {
    r.set_context(fmt::format("metadata entry {}", i));
    std::string key = r.read_string("key");
    r.set_context(fmt::format("metadata entry {} {}", i, quote_string(key, 80)));
    // A map node with its key and value, and the key again in key_order.
    r.charge(kMapNodeBytes + sizeof(GgufValue) + 2 * (sizeof(std::string) + string_heap_bytes(key.size())),
             "metadata entry");
    if (metadata.count(key) != 0) r.error("duplicate metadata key");
    const GgufValueType type = read_value_type(r, "value type");
    metadata.emplace(key, read_value(r, type, 1));
    key_order.push_back(std::move(key));
  }
  r.set_context("");
}

uint32_t read_alignment(const Reader& r, const std::map<std::string, GgufValue>& metadata) {
  const auto it = metadata.find("general.alignment");
  if (it == metadata.end()) return kDefaultAlignment;
  if (it->second.type != GgufValueType::UINT32) {
    r.error("general.alignment has type {}, must be UINT32",
            gguf_value_type_name(it->second.type));
  }
  const auto a = std::get<uint64_t>(it->second.value);
  if (!is_power_of_two(a)) r.error("general.alignment = {} is not a power of two", a);
  return static_cast<uint32_t>(a);
}

// Checks that a tensor's data lies, aligned, inside the file and points `data` at it.
void locate_tensor_data(Reader& r, std::span<const uint8_t> bytes, uint64_t data_offset,
                        uint32_t alignment, GgufTensor& t) {
  r.set_context(fmt::format("tensor {}", quote_string(t.name, 80)));
  if (t.offset % alignment != 0) {
    r.error("data offset {} is not a multiple of the alignment {}", t.offset, alignment);
  }
  const uint64_t avail = bytes.size() > data_offset ? bytes.size() - data_offset : 0;
  if (t.offset > avail || t.n_bytes > avail - t.offset) {
    r.error("data (offset {} + {} bytes, after the data section start {}) extends beyond the "
            "end of the {}-byte file",
            t.offset, t.n_bytes, data_offset, bytes.size());
  }
  t.data = bytes.data() + data_offset + t.offset;
}

// The typed accessors prefix GgufValue's messages with the file name.
template <typename F>
auto with_file_context(const std::string& file, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    fail("{}: {}", file, e.what());
  }
}

}  // namespace

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name_for_errors) {
  GgufFile g;
  g.source_name_ = name_for_errors;
  Reader r(bytes, g.source_name_);
  if (bytes.size() < 4) r.error("file is {} bytes long, too short to be a GGUF file", bytes.size());
  if (r.read<uint32_t>("magic") != kGgufMagic) {
    r.error("not a GGUF file (first bytes {}, expected 47 47 55 46 \"GGUF\")",
            magic_display(bytes));
  }
  g.version_ = read_version(r);
  const Counts counts = read_counts(r);
  read_metadata(r, counts.kvs, g.metadata_, g.key_order_);
  g.alignment_ = read_alignment(r, g.metadata_);

  r.charge(counts.tensors * sizeof(GgufTensor), "the tensor table");
  g.tensors_.reserve(static_cast<size_t>(counts.tensors));  // bounded by read_counts and the budget
  for (uint64_t i = 0; i < counts.tensors; ++i) {
    GgufTensor t = read_tensor_info(r, i);
    // Name, shape, and the index's map node with its own copy of the name.
    r.charge(2 * string_heap_bytes(t.name.size()) + t.ne.size() * sizeof(uint64_t) + kMapNodeBytes +
                 sizeof(std::string) + sizeof(size_t),
             "tensor info");
    if (!g.tensor_index_.emplace(t.name, g.tensors_.size()).second) r.error("duplicate tensor name");
    g.tensors_.push_back(std::move(t));
  }
  g.data_offset_ = align_up(r.pos(), g.alignment_);
  for (auto& t : g.tensors_) locate_tensor_data(r, bytes, g.data_offset_, g.alignment_, t);
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  return with_file_context(source_name_, [&] { return v->as_int(key); });
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  return with_file_context(source_name_, [&] { return v->as_float(key); });
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  return with_file_context(source_name_, [&] { return v->as_string(key); });
}

int64_t GgufFile::require_int(const std::string& key) const {
  if (auto v = get_int(key)) return *v;
  fail("{}: missing metadata key {}", source_name_, key);
}

std::string GgufFile::require_string(const std::string& key) const {
  if (auto v = get_string(key)) return *v;
  fail("{}: missing metadata key {}", source_name_, key);
}

// ---- GgufWriter ----------------------------------------------------------------------------

namespace {

// Appends little-endian fields to a growing byte buffer.
class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t> start = {}) : out_(std::move(start)) {}
  template <typename T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.insert(out_.end(), b, b + sizeof(T));
  }
  void put_bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void zero_fill_to(uint64_t size) { out_.resize(static_cast<size_t>(size), 0); }
  void pad_to(uint64_t alignment) { zero_fill_to(align_up(out_.size(), alignment)); }
  uint64_t size() const { return out_.size(); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

[[noreturn]] void bad_value(std::string_view key, GgufValueType t) {
  fail("GgufWriter: value of '{}' does not hold a valid {}", key, gguf_value_type_name(t));
}

template <typename T>
void put_unsigned(ByteSink& out, const GgufValue& v, std::string_view key) {
  const auto* u = std::get_if<uint64_t>(&v.value);
  if (u == nullptr || *u > std::numeric_limits<T>::max()) bad_value(key, v.type);
  out.put(static_cast<T>(*u));
}

template <typename T>
void put_signed(ByteSink& out, const GgufValue& v, std::string_view key) {
  const auto* i = std::get_if<int64_t>(&v.value);
  if (i == nullptr || *i < std::numeric_limits<T>::min() || *i > std::numeric_limits<T>::max()) {
    bad_value(key, v.type);
  }
  out.put(static_cast<T>(*i));
}

void write_value(ByteSink& out, const GgufValue& v, std::string_view key);

void write_array(ByteSink& out, const GgufArray& a, std::string_view key) {
  const GgufItems& items = a.items;
  if (!items.empty() && items.type() != a.elem_type) {
    fail("GgufWriter: array '{}' of {} holds a {} item", key, gguf_value_type_name(a.elem_type),
         gguf_value_type_name(items.type()));
  }
  out.put(static_cast<uint32_t>(a.elem_type));
  out.put<uint64_t>(items.size());
  if (scalar_size(a.elem_type) > 0) {
    out.put_bytes(items.scalar_bytes());  // already the file's encoding
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (a.elem_type == GgufValueType::STRING) {
      out.put_string(items[i].as_string(std::string(key)));
    } else {
      write_array(out, items[i].as_array(std::string(key)), key);
    }
  }
}

void write_value(ByteSink& out, const GgufValue& v, std::string_view key) {
  switch (v.type) {
    case GgufValueType::UINT8: put_unsigned<uint8_t>(out, v, key); return;
    case GgufValueType::UINT16: put_unsigned<uint16_t>(out, v, key); return;
    case GgufValueType::UINT32: put_unsigned<uint32_t>(out, v, key); return;
    case GgufValueType::UINT64: put_unsigned<uint64_t>(out, v, key); return;
    case GgufValueType::INT8: put_signed<int8_t>(out, v, key); return;
    case GgufValueType::INT16: put_signed<int16_t>(out, v, key); return;
    case GgufValueType::INT32: put_signed<int32_t>(out, v, key); return;
    case GgufValueType::INT64: put_signed<int64_t>(out, v, key); return;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: {
      const auto* d = std::get_if<double>(&v.value);
      if (d == nullptr) bad_value(key, v.type);
      if (v.type == GgufValueType::FLOAT32) {
        out.put(static_cast<float>(*d));
      } else {
        out.put(*d);
      }
      return;
    }
    case GgufValueType::BOOL: {
      const auto* b = std::get_if<bool>(&v.value);
      if (b == nullptr) bad_value(key, v.type);
      out.put(static_cast<uint8_t>(*b ? 1 : 0));
      return;
    }
    case GgufValueType::STRING: {
      const auto* s = std::get_if<std::string>(&v.value);
      if (s == nullptr) bad_value(key, v.type);
      out.put_string(*s);
      return;
    }
    case GgufValueType::ARRAY: {
      const auto* a = std::get_if<GgufArray>(&v.value);
      if (a == nullptr) bad_value(key, v.type);
      write_array(out, *a, key);
      return;
    }
  }
  fail("GgufWriter: value of '{}' has unknown type {}", key, static_cast<uint32_t>(v.type));
}

template <typename T, typename Convert>
GgufValue make_array(GgufValueType elem_type, const std::vector<T>& v, Convert convert) {
  GgufArray a;
  a.elem_type = elem_type;
  a.items.reserve(elem_type, v.size());
  for (const T& x : v) a.items.push_back(GgufValue{elem_type, convert(x)});
  return GgufValue{GgufValueType::ARRAY, std::move(a)};
}
}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set(key, GgufValue{GgufValueType::UINT32, uint64_t{v}});
}

void GgufWriter::set_f32(const std::string& key, float v) {
  set(key, GgufValue{GgufValueType::FLOAT32, double{v}});
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set(key, GgufValue{GgufValueType::STRING, v});
}

void GgufWriter::set_bool(const std::string& key, bool v) {
  set(key, GgufValue{GgufValueType::BOOL, v});
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  set(key, make_array(GgufValueType::STRING, v, [](const std::string& s) { return s; }));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set(key, make_array(GgufValueType::FLOAT32, v, [](float f) { return double{f}; }));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  set(key, make_array(GgufValueType::INT32, v, [](int32_t i) { return int64_t{i}; }));
}

uint64_t GgufWriter::checked_tensor_bytes(const std::string& name, const std::vector<uint64_t>& ne,
                                          TensorType type) const {
  if (name.size() >= kMaxNameBytes) {
    fail("GgufWriter: tensor name '{}' is {} bytes; names must be shorter than {}", name,
         name.size(), kMaxNameBytes);
  }
  for (const auto& t : tensors_) {
    if (t.name == name) fail("GgufWriter: duplicate tensor name '{}'", name);
  }
  if (ne.empty() || ne.size() > kMaxDims) {
    fail("GgufWriter: tensor '{}' has {} dimensions, must be 1 to {}", name, ne.size(), kMaxDims);
  }
  const TypeTraits& tr = traits(type);
  if (ne[0] % tr.block_elems != 0) {
    fail("GgufWriter: tensor '{}' ne[0] = {} is not a multiple of the {} block size {}", name,
         ne[0], tr.name, tr.block_elems);
  }
  uint64_t expected = 0;
  bool ok = checked_mul(ne[0] / tr.block_elems, tr.block_bytes, &expected);
  for (size_t d = 1; d < ne.size(); ++d) ok = ok && checked_mul(expected, ne[d], &expected);
  if (!ok) fail("GgufWriter: tensor '{}' is too large", name);
  return expected;
}

void GgufWriter::add_tensor(const std::string& name, std::vector<uint64_t> ne, TensorType type,
                            std::span<const uint8_t> data) {
  const uint64_t expected = checked_tensor_bytes(name, ne, type);
  if (data.size() != expected) {
    fail("GgufWriter: tensor '{}' needs {} bytes of data, got {}", name, expected, data.size());
  }
  tensors_.push_back(PendingTensor{name, std::move(ne), static_cast<uint32_t>(type),
                                   std::vector<uint8_t>(data.begin(), data.end()), std::nullopt,
                                   expected, false});
}

void GgufWriter::declare_tensor(const std::string& name, std::vector<uint64_t> ne, TensorType type) {
  const uint64_t n_bytes = checked_tensor_bytes(name, ne, type);
  tensors_.push_back(
      PendingTensor{name, std::move(ne), static_cast<uint32_t>(type), {}, std::nullopt, n_bytes, true});
}

void GgufWriter::add_tensor_info_unchecked(const std::string& name, std::vector<uint64_t> ne,
                                           uint32_t type_id, uint64_t offset) {
  tensors_.push_back(PendingTensor{name, std::move(ne), type_id, {}, offset, 0, false});
}

std::vector<uint8_t> GgufWriter::header_bytes(std::vector<uint64_t>* offsets) const {
  if (!is_power_of_two(alignment_)) {
    fail("GgufWriter: alignment {} is not a power of two", alignment_);
  }
  auto kvs = kv_;
  const bool has_alignment_key = std::any_of(
      kvs.begin(), kvs.end(), [](const auto& kv) { return kv.first == "general.alignment"; });
  if (alignment_ != kDefaultAlignment && !has_alignment_key) {
    kvs.emplace_back("general.alignment", GgufValue{GgufValueType::UINT32, uint64_t{alignment_}});
  }

  ByteSink out;
  out.put(kGgufMagic);
  out.put(kWriteVersion);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(kvs.size());
  for (const auto& [key, value] : kvs) {
    out.put_string(key);
    out.put(static_cast<uint32_t>(value.type));
    write_value(out, value, key);
  }

  // Tensors with data are laid out in order, each at an aligned offset.
  offsets->clear();
  uint64_t next = 0;
  for (const auto& t : tensors_) {
    if (t.fixed_offset) {
      offsets->push_back(*t.fixed_offset);
      continue;
    }
    offsets->push_back(align_up(next, alignment_));
    next = offsets->back() + t.n_bytes;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    out.put_string(t.name);
    out.put(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t n : t.ne) out.put(n);
    out.put(t.type_id);
    out.put((*offsets)[i]);
  }
  out.pad_to(alignment_);
  return out.take();
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  for (const auto& t : tensors_) {
    if (t.streamed) fail("GgufWriter: tensor '{}' has no data here; use write_streamed()", t.name);
  }
  std::vector<uint64_t> offsets;
  ByteSink out(header_bytes(&offsets));
  const uint64_t data_start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].fixed_offset) continue;
    out.zero_fill_to(data_start + offsets[i]);
    out.put_bytes(tensors_[i].data);
  }
  if (out.size() > data_start) out.pad_to(alignment_);  // ggml pads the last tensor too
  return out.take();
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail("{}: cannot create: {}", path, std::strerror(errno));
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int write_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size()) fail("{}: write failed: {}", path, std::strerror(write_errno));
  if (!closed) fail("{}: write failed: {}", path, std::strerror(errno));
}

namespace {

// A file being written front to back, counting its bytes; removed again unless commit()
// succeeds, so a failed write leaves no truncated model behind.
class StreamFile {
 public:
  explicit StreamFile(std::string path) : path_(std::move(path)), f_(std::fopen(path_.c_str(), "wb")) {
    if (f_ == nullptr) fail("{}: cannot create: {}", path_, std::strerror(errno));
  }
  ~StreamFile() {
    if (f_ != nullptr) {
      std::fclose(f_);
      std::remove(path_.c_str());
    }
  }
  StreamFile(const StreamFile&) = delete;
  StreamFile& operator=(const StreamFile&) = delete;

  void put(std::span<const uint8_t> b) {
    if (!b.empty() && std::fwrite(b.data(), 1, b.size(), f_) != b.size())
      fail("{}: write failed: {}", path_, std::strerror(errno));
    size_ += b.size();
  }
  void zero_fill_to(uint64_t size) {
    static constexpr uint8_t kZeros[64] = {};
    while (size_ < size) put(std::span(kZeros, static_cast<size_t>(std::min<uint64_t>(size - size_, sizeof kZeros))));
  }
  uint64_t size() const { return size_; }
  void commit() {
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) {
      const int err = errno;
      std::remove(path_.c_str());
      fail("{}: write failed: {}", path_, std::strerror(err));
    }
  }

 private:
  std::string path_;
  std::FILE* f_;
  uint64_t size_ = 0;
};

}  // namespace

void GgufWriter::write_streamed(const std::string& path,
                                const std::function<void(size_t index, const DataSink& sink)>& produce) const {
  std::vector<uint64_t> offsets;
  const std::vector<uint8_t> header = header_bytes(&offsets);
  StreamFile out(path);
  out.put(header);
  const uint64_t data_start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    if (t.fixed_offset) continue;
    out.zero_fill_to(data_start + offsets[i]);
    if (!t.streamed) {
      out.put(t.data);
      continue;
    }
    uint64_t got = 0;
    const DataSink sink = [&](std::span<const uint8_t> b) {
      if (b.size() > t.n_bytes - got)
        fail("GgufWriter: tensor '{}' was given more than its {} bytes", t.name, t.n_bytes);
      got += b.size();
      out.put(b);
    };
    produce(i, sink);
    if (got != t.n_bytes) fail("GgufWriter: tensor '{}' needs {} bytes of data, got {}", t.name, t.n_bytes, got);
  }
  if (out.size() > data_start) out.zero_fill_to(align_up(out.size(), alignment_));
  out.commit();
}

}  // namespace h2o
