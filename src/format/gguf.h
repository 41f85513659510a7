// GGUF v2/v3 reader (layout: ggml docs/gguf.md). Parses the header, every metadata value
// (all 13 value types, nested arrays) and the tensor table, checking every count, length,
// offset and size against the file before use: a hostile file yields h2o::Error with a
// one-line message, never a crash, hang or huge allocation. Tensor data stays in the
// mapping; GgufTensor::data points into it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/printable.h"  // printable_string: strings from files (keys, names, tokens) are arbitrary bytes
#include "format/tensor_type.h"

namespace h2o {

class MappedFile;

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType t);

struct GgufValue;
struct GgufArray;
class GgufItems;

// One item of an array, viewed where the array stores it.
class GgufItem {
 public:
  GgufItem(const GgufItems& items, size_t index) : items_(&items), index_(index) {}
  GgufValueType type() const;
  bool is_integer() const;
  // As GgufValue's accessors. References stay valid while the array lives.
  int64_t as_int(const std::string& key_for_errors) const;
  double as_float(const std::string& key_for_errors) const;
  const std::string& as_string(const std::string& key_for_errors) const;
  const GgufArray& as_array(const std::string& key_for_errors) const;
  bool as_bool(const std::string& key_for_errors) const;
  GgufValue value() const;     // a copy
  operator GgufValue() const;  // NOLINT(google-explicit-constructor): an item is usable as a value

 private:
  const GgufItems* items_;
  size_t index_;
};

// The items of a metadata array, stored compactly: scalars as their little-endian bytes
// (as in the file: a UINT8 array of N items takes N bytes, not N GgufValues of 48 bytes
// each), strings as strings, nested arrays as arrays. All items share one type.
class GgufItems {
 public:
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  GgufItem operator[](size_t i) const { return GgufItem(*this, i); }  // unchecked, like std::vector
  GgufItem at(size_t i) const;                                        // throws std::out_of_range
  // Type of the items (meaningful when not empty).
  GgufValueType type() const { return type_; }

  // Appends a copy of `v`. Throws h2o::Error if its type differs from the items' type or
  // its value does not fit the type (a UINT8 of 256).
  void push_back(const GgufValue& v);
  // Bulk forms for the reader: `count` scalars of type `t` as little-endian bytes; one string; one array.
  void append_scalars(GgufValueType t, std::span<const uint8_t> bytes, size_t count);
  void push_string(std::string s);
  void push_array(GgufArray a);
  // Sets the type (as the first item would) and makes room for `n` items.
  void reserve(GgufValueType t, size_t n);
  // Scalar items: their bytes, exactly as a file stores them.
  std::span<const uint8_t> scalar_bytes() const { return raw_; }

 private:
  friend class GgufItem;
  void set_type(GgufValueType t);
  GgufValueType type_ = GgufValueType::UINT8;
  size_t count_ = 0;
  std::vector<uint8_t> raw_;          // scalar types
  std::vector<std::string> strings_;  // STRING
  std::vector<GgufArray> arrays_;     // ARRAY
};

struct GgufArray {
  GgufValueType elem_type = GgufValueType::UINT8;
  GgufItems items;
};

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Integers are widened: unsigned types to uint64_t, signed to int64_t; floats to double.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  bool is_integer() const;
  // Integer value of any integer type; throws h2o::Error if not an integer or out of range.
  int64_t as_int(const std::string& key_for_errors) const;
  double as_float(const std::string& key_for_errors) const;  // FLOAT32/FLOAT64 (and ints)
  const std::string& as_string(const std::string& key_for_errors) const;
  const GgufArray& as_array(const std::string& key_for_errors) const;
  bool as_bool(const std::string& key_for_errors) const;
  // Human-readable rendering for `h2o inspect` (long arrays abbreviated).
  std::string to_display_string(size_t max_items = 8) const;
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] is the contiguous dimension (ggml order)
  TensorType type = TensorType::F32;
  uint64_t offset = 0;       // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // points into the file bytes
};

class GgufFile {
 public:
  // Maps and parses a file. Throws h2o::Error ("<path>: <problem>") on any defect.
  static GgufFile open(const std::string& path);
  // Parses bytes that the caller keeps alive (used by the fuzzer and tests).
  static GgufFile parse(std::span<const uint8_t> bytes, const std::string& name_for_errors);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  // Metadata keys in file order (for display).
  const std::vector<std::string>& key_order() const { return key_order_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::string& source_name() const { return source_name_; }

  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed metadata accessors. The `require_*` forms throw "<file>: missing metadata key <k>".
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  int64_t require_int(const std::string& key) const;
  std::string require_string(const std::string& key) const;

 private:
  std::shared_ptr<MappedFile> file_;  // null when parsing caller-owned bytes
  std::string source_name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;  // name -> index in tensors_
};

// Writes GGUF v3 files (used by `h2o synth`, tests that build malformed files, and
// conversions). Tensors are written in the order added, aligned to `alignment`.
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}
  void set(const std::string& key, GgufValue value);
  void set_u32(const std::string& key, uint32_t v);
  void set_f32(const std::string& key, float v);
  void set_string(const std::string& key, const std::string& v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // `data` must hold row_bytes(type, ne[0]) * (product of other dims) bytes; copied.
  void add_tensor(const std::string& name, std::vector<uint64_t> ne, TensorType type,
                  std::span<const uint8_t> data);
  // Writes one tensor-table entry exactly as given (any type id, shape and offset; no data
  // and no checks). Only for building malformed files in tests and fuzz seeds.
  void add_tensor_info_unchecked(const std::string& name, std::vector<uint64_t> ne,
                                 uint32_t type_id, uint64_t offset);
  // Declares a tensor whose data is not held here but produced while write_streamed()
  // writes the file, so files larger than memory can be written (`h2o synth` of a 7B
  // shape). Same checks as add_tensor. to_bytes() and write() refuse such a writer.
  void declare_tensor(const std::string& name, std::vector<uint64_t> ne, TensorType type);
  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // throws h2o::Error on I/O failure

  // Receives a declared tensor's bytes, in pieces, in order.
  using DataSink = std::function<void(std::span<const uint8_t>)>;
  // Writes the file front to back without holding it in memory: tensors from add_tensor
  // come from their copies; for a declared tensor, produce(index, sink) must pass exactly
  // its bytes to `sink` (index counts every tensor in the order added). Throws h2o::Error
  // on I/O failure or a wrong byte count, removing the partial file.
  void write_streamed(const std::string& path,
                      const std::function<void(size_t index, const DataSink& sink)>& produce) const;

 private:
  struct PendingTensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type_id = 0;
    std::vector<uint8_t> data;
    std::optional<uint64_t> fixed_offset;  // set by add_tensor_info_unchecked (no data)
    uint64_t n_bytes = 0;                  // data bytes (== data.size() unless streamed)
    bool streamed = false;                 // set by declare_tensor (data produced later)
  };
  // Checks a tensor for add_tensor/declare_tensor; returns its data size in bytes.
  uint64_t checked_tensor_bytes(const std::string& name, const std::vector<uint64_t>& ne,
                                TensorType type) const;
  // Header, metadata and tensor table, zero-padded to the data section; fills the data
  // offset of every tensor (relative to the data section).
  std::vector<uint8_t> header_bytes(std::vector<uint64_t>* offsets) const;
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace h2o
