#include "format/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <filesystem>

#include "common/check.h"
#include "common/json_file.h"
#include "format/mapped_file.h"

namespace h2o {

static_assert(std::endian::native == std::endian::little, "h2o assumes a little-endian host");

namespace {

using nlohmann::json;

struct DtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;
  uint32_t bits;
};

// In enum order.
constexpr std::array<DtypeInfo, 22> kDtypes = {{
    {SafetensorsDtype::BOOL, "BOOL", 8},
    {SafetensorsDtype::U8, "U8", 8},
    {SafetensorsDtype::I8, "I8", 8},
    {SafetensorsDtype::I16, "I16", 16},
    {SafetensorsDtype::U16, "U16", 16},
    {SafetensorsDtype::F16, "F16", 16},
    {SafetensorsDtype::BF16, "BF16", 16},
    {SafetensorsDtype::I32, "I32", 32},
    {SafetensorsDtype::U32, "U32", 32},
    {SafetensorsDtype::F32, "F32", 32},
    {SafetensorsDtype::F64, "F64", 64},
    {SafetensorsDtype::C64, "C64", 64},
    {SafetensorsDtype::I64, "I64", 64},
    {SafetensorsDtype::U64, "U64", 64},
    {SafetensorsDtype::F8_E4M3, "F8_E4M3", 8},
    {SafetensorsDtype::F8_E5M2, "F8_E5M2", 8},
    {SafetensorsDtype::F8_E8M0, "F8_E8M0", 8},
    {SafetensorsDtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {SafetensorsDtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {SafetensorsDtype::F4, "F4", 4},
    {SafetensorsDtype::F6_E2M3, "F6_E2M3", 6},
    {SafetensorsDtype::F6_E3M2, "F6_E3M2", 6},
}};

const DtypeInfo& info(SafetensorsDtype d) { return kDtypes[static_cast<size_t>(d)]; }

constexpr size_t kMaxShapeShown = 8;

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size() && i < kMaxShapeShown; ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  if (shape.size() > kMaxShapeShown) s += fmt::format(", ... ({} dims)", shape.size());
  return s + "]";
}

// A non-negative JSON integer that fits in 64 bits (nlohmann parses larger ones as floats).
bool is_u64(const json& v) { return v.is_number_unsigned(); }

// One tensor entry of the header. `what` is the file and tensor, for messages.
SafetensorsTensor parse_entry(const std::string& name, const json& entry, const std::string& file) {
  const std::string what = fmt::format("{}: tensor {}", file, quote_for_message(name));
  if (!entry.is_object()) fail("{}: entry is {}, expected an object", what, entry.type_name());
  // Unknown fields are ignored, as the reference reader's serde struct ignores them.
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) fail("{}: dtype is missing or not a string", what);
  if (shape_it == entry.end() || !shape_it->is_array()) fail("{}: shape is missing or not an array", what);
  if (offsets_it == entry.end() || !offsets_it->is_array()) fail("{}: data_offsets is missing or not an array", what);

  SafetensorsTensor t;
  t.name = name;
  t.file = file;
  const auto& dtype_str = dtype_it->get_ref<const std::string&>();
  const auto dtype = parse_dtype(dtype_str);
  if (!dtype) fail("{}: unknown dtype {}", what, quote_for_message(dtype_str));
  t.dtype = *dtype;

  t.shape.reserve(shape_it->size());
  for (const json& d : *shape_it) {
    if (!is_u64(d)) {
      fail("{}: shape has {}, expected non-negative integers below 2^64", what,
           d.is_number() ? d.dump() : std::string(d.type_name()));
    }
    t.shape.push_back(d.get<uint64_t>());
  }
  // Elements, exactly: 0 if any dimension is 0, else the product, which must fit in 64 bits
  // together with the bit count.
  const bool empty = std::find(t.shape.begin(), t.shape.end(), uint64_t{0}) != t.shape.end();
  uint64_t elems = empty ? 0 : 1;
  uint64_t bits = 0;
  bool overflow = false;
  for (const uint64_t d : t.shape) overflow = overflow || (!empty && __builtin_mul_overflow(elems, d, &elems));
  overflow = overflow || __builtin_mul_overflow(elems, uint64_t{info(t.dtype).bits}, &bits);
  if (overflow) fail("{}: shape {} is too large", what, shape_string(t.shape));
  if (bits % 8 != 0) {
    fail("{}: shape {} of {} is not a whole number of bytes", what, shape_string(t.shape), dtype_name(t.dtype));
  }
  t.n_elements = elems;
  t.n_bytes = bits / 8;

  const json& off = *offsets_it;
  if (off.size() != 2 || !is_u64(off[0]) || !is_u64(off[1])) {
    fail("{}: data_offsets must be [BEGIN, END], two non-negative integers", what);
  }
  const auto begin = off[0].get<uint64_t>();
  const auto end = off[1].get<uint64_t>();
  if (end < begin) fail("{}: data_offsets [{}, {}] end before they begin", what, begin, end);
  if (end - begin != t.n_bytes) {
    fail("{}: data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {}", what, begin, end, end - begin,
         shape_string(t.shape), dtype_name(t.dtype), t.n_bytes);
  }
  t.offset = begin;
  return t;
}

}  // namespace

std::string_view dtype_name(SafetensorsDtype d) { return info(d).name; }
uint32_t dtype_bits(SafetensorsDtype d) { return info(d).bits; }

std::optional<SafetensorsDtype> parse_dtype(std::string_view s) {
  for (const auto& d : kDtypes) {
    if (d.name == s) return d.dtype;
  }
  return std::nullopt;
}

std::optional<TensorType> engine_type(SafetensorsDtype d) {
  switch (d) {
    case SafetensorsDtype::F32:
      return TensorType::F32;
    case SafetensorsDtype::F16:
      return TensorType::F16;
    case SafetensorsDtype::BF16:
      return TensorType::BF16;
    default:
      return std::nullopt;
  }
}

bool SafetensorsTensor::data_aligned() const {
  const uint32_t elem_bytes = dtype_bits(dtype) / 8;
  return elem_bytes <= 1 || reinterpret_cast<uintptr_t>(data) % elem_bytes == 0;
}

TensorType SafetensorsTensor::weight_type() const {
  const auto t = engine_type(dtype);
  if (!t)
    fail("{}: tensor {} has dtype {}; weights must be F32, F16 or BF16", file, quote_for_message(name),
         dtype_name(dtype));
  return *t;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto mapped = std::make_shared<MappedFile>(path);
  SafetensorsFile f = parse(mapped->bytes(), path);
  f.file_ = std::move(mapped);
  return f;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  if (bytes.size() < 8)
    fail("{}: {} bytes, too short for a safetensors file (8-byte header length)", file, bytes.size());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof n);
  if (n > kMaxHeaderBytes) fail("{}: header length {} exceeds the limit of {} bytes", file, n, kMaxHeaderBytes);
  const uint64_t buffer_size = bytes.size() - 8;  // bytes after the length field
  if (n > buffer_size) fail("{}: header length {} runs past the end of the file ({} bytes)", file, n, bytes.size());
  const uint64_t data_size = buffer_size - n;

  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n));
  const json header = parse_json_text(text, fmt::format("{}: header", file), JsonDuplicateKeys::kReject);
  if (!header.is_object()) fail("{}: header is {}, expected a JSON object", file, header.type_name());

  SafetensorsFile f;
  f.source_name_ = file;
  f.header_bytes_ = n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail("{}: __metadata__ is {}, expected an object of strings", file, value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail("{}: __metadata__ value of {} is not a string", file, quote_for_message(mk));
        f.metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    SafetensorsTensor t = parse_entry(key, value, file);
    if (t.offset + t.n_bytes > data_size) {  // offset + n_bytes is END, already a valid u64
      fail("{}: tensor {} data_offsets [{}, {}] lie outside the {}-byte data buffer", file, quote_for_message(key),
           t.offset, t.offset + t.n_bytes, data_size);
    }
    f.tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data buffer: sorted by offsets, each begins where the previous
  // one ends, from 0 to the end of the file (the reference reader's rule; no holes, no overlap).
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    if (a.n_bytes != b.n_bytes) return a.n_bytes < b.n_bytes;
    return a.name < b.name;
  });
  uint64_t expected = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const auto& t : f.tensors_) {
    if (t.offset < expected) {
      fail("{}: tensor {} at bytes [{}, {}) overlaps tensor {} at [{}, {})", file, quote_for_message(t.name), t.offset,
           t.offset + t.n_bytes, quote_for_message(prev->name), prev->offset, prev->offset + prev->n_bytes);
    }
    if (t.offset > expected) {
      fail("{}: data bytes [{}, {}) before tensor {} belong to no tensor", file, expected, t.offset,
           quote_for_message(t.name));
    }
    expected = t.offset + t.n_bytes;
    prev = &t;
  }
  if (expected != data_size) {
    fail("{}: {} bytes after the last tensor's data: 8 + header {} + data {} != file size {}", file,
         data_size - expected, n, expected, bytes.size());
  }

  const uint8_t* data = bytes.data() + 8 + n;
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    f.tensors_[i].data = data + f.tensors_[i].offset;
    f.index_.emplace(f.tensors_[i].name, i);
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---- checkpoints -------------------------------------------------------------------------

std::string hf_config_path(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail("{}: a directory, but not a Hugging Face model directory (no config.json)", dir);
  return path;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) fail("{}: no such directory", dir);
  if (st.type() != fs::file_type::directory) fail("{}: not a directory", dir);
  const fs::path root(dir);
  if (fs::exists(fs::symlink_status(root / kSingleFile, ec))) return open_file((root / kSingleFile).string());
  if (fs::exists(fs::symlink_status(root / kIndexFile, ec))) return open_index((root / kIndexFile).string());
  if (fs::exists(root / "pytorch_model.bin", ec) || fs::exists(root / "pytorch_model.bin.index.json", ec)) {
    fail("{}: has only PyTorch pickle weights (pytorch_model.bin); h2o reads safetensors, convert them first", dir);
  }
  fail("{}: no {} or {}", dir, kSingleFile, kIndexFile);
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_file(const std::string& path) {
  SafetensorsCheckpoint c;
  c.source_name_ = path;
  c.shards_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path)));
  for (const auto& t : c.shards_.front()->tensors()) c.by_name_.emplace(t.name, &t);
  for (const auto& [name, t] : c.by_name_) c.sorted_.push_back(t);
  return c;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_index(const std::string& index_path) {
  namespace fs = std::filesystem;
  const json index = read_json_file(index_path);
  if (!index.is_object()) fail("{}: expected a JSON object, got {}", index_path, index.type_name());
  const auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object()) fail("{}: weight_map is missing or not an object", index_path);
  if (map_it->empty()) fail("{}: weight_map is empty", index_path);

  SafetensorsCheckpoint c;
  c.source_name_ = index_path;
  c.sharded_ = true;
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, const SafetensorsFile*> opened;  // shard file name -> its file
  for (const auto& [name, shard_json] : map_it->items()) {
    if (!shard_json.is_string())
      fail("{}: weight_map entry for {} is not a string", index_path, quote_for_message(name));
    const auto& shard = shard_json.get_ref<const std::string&>();
    // Shards are files beside the index; a path elsewhere is not a checkpoint layout.
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != shard.npos ||
        shard.find('\0') != shard.npos) {
      fail("{}: weight_map names shard {} for {}, which is not a file name in the directory", index_path,
           quote_for_message(shard), quote_for_message(name));
    }
    auto it = opened.find(shard);
    if (it == opened.end()) {
      const std::string shard_path = (dir / shard).string();
      try {
        c.shards_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(shard_path)));
      } catch (const Error& e) {
        fail("{} (a shard named by {})", e.what(), index_path);
      }
      it = opened.emplace(shard, c.shards_.back().get()).first;
    }
    const SafetensorsTensor* t = it->second->find(name);
    if (t == nullptr) {
      fail("{}: no tensor {}, which {} places in this shard", it->second->source_name(), quote_for_message(name),
           index_path);
    }
    c.by_name_.emplace(name, t);
  }
  for (const auto& [name, t] : c.by_name_) c.sorted_.push_back(t);
  return c;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsCheckpoint::require(std::string_view name) const {
  const SafetensorsTensor* t = find(name);
  if (t == nullptr) fail("{}: missing tensor {}", source_name_, quote_for_message(name));
  return *t;
}

}  // namespace h2o
