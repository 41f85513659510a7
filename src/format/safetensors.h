// safetensors reader (layout: ../shared/docs/model-families.md §2.2): u64 little-endian
// header length N, N bytes of JSON header, then the data buffer that every tensor's
// data_offsets index. Every header field, shape and offset is checked before use, with
// overflow-safe arithmetic, the way the reference (Rust) reader checks them: a hostile file
// yields a one-line h2o::Error naming the file and the problem, never a crash or a read
// outside the file. Tensor data stays in the memory mapping.
//
// SafetensorsCheckpoint presents a Hugging Face directory's weights, a single
// model.safetensors or shards listed by model.safetensors.index.json (§2.3), as one set of
// named tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_type.h"

namespace h2o {

class MappedFile;

// Every dtype string the reference reader knows. Only F32, F16 and BF16 can be weights.
enum class SafetensorsDtype : uint8_t {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  C64,
  I64,
  U64,
  F8_E4M3,
  F8_E5M2,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  F4,
  F6_E2M3,
  F6_E3M2,
};

std::string_view dtype_name(SafetensorsDtype d);
// Bits per element (4 for F4, 6 for the F6 types).
uint32_t dtype_bits(SafetensorsDtype d);
// The dtype a header string names; nullopt for unknown strings (case-sensitive, as in Rust).
std::optional<SafetensorsDtype> parse_dtype(std::string_view s);
// The engine's TensorType for F32, F16 and BF16; nullopt for the others.
std::optional<TensorType> engine_type(SafetensorsDtype d);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<uint64_t> shape;    // PyTorch order: shape.back() is contiguous ([out, in] for Linear)
  uint64_t n_elements = 0;        // product of shape (1 for a 0-rank scalar)
  uint64_t n_bytes = 0;           // == n_elements * dtype_bits / 8
  uint64_t offset = 0;            // BEGIN, relative to the data buffer
  const uint8_t* data = nullptr;  // into the file; aligned only as the writer chose (use memcpy
                                  // or unaligned loads unless data_aligned() says otherwise)
  std::string file;               // the file it came from, for messages

  // The data's address is a multiple of the element size (for F16/BF16/F32 kernels).
  bool data_aligned() const;
  // The tensor's type for use as weights. Throws h2o::Error "<file>: tensor <name> has
  // dtype I64; weights must be F32, F16 or BF16" for every other dtype.
  TensorType weight_type() const;
};

class SafetensorsFile {
 public:
  // Largest header the reference reader accepts (MAX_HEADER_SIZE).
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and parses a file. Throws h2o::Error ("<path>: <problem>") on any defect.
  static SafetensorsFile open(const std::string& path);
  // Parses bytes that the caller keeps alive (the fuzzer and tests).
  static SafetensorsFile parse(std::span<const uint8_t> bytes, const std::string& name_for_errors);

  // In file order (by data offset; zero-length tensors in name order at their offset).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // `__metadata__` (all values are strings), empty if absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t header_bytes() const { return header_bytes_; }
  const std::string& source_name() const { return source_name_; }

 private:
  std::shared_ptr<MappedFile> file_;  // null when parsing caller-owned bytes
  std::string source_name_;
  uint64_t header_bytes_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> index in tensors_
};

// `dir`/config.json, the file that makes a directory a Hugging Face model directory.
// Throws h2o::Error "<dir>: a directory, but not a Hugging Face model directory (no
// config.json)" when it is not a regular file there.
std::string hf_config_path(const std::string& dir);

class SafetensorsCheckpoint {
 public:
  static constexpr std::string_view kSingleFile = "model.safetensors";
  static constexpr std::string_view kIndexFile = "model.safetensors.index.json";

  // The weights of a Hugging Face model directory: model.safetensors if present (as
  // transformers prefers it), else the shards named by model.safetensors.index.json.
  // Throws h2o::Error naming the directory when it holds neither.
  static SafetensorsCheckpoint open_dir(const std::string& dir);
  // One safetensors file: every tensor in it.
  static SafetensorsCheckpoint open_file(const std::string& path);
  // A shard index: exactly the tensors its weight_map names, each from its shard (shard
  // names are file names in the index's directory; each shard is opened once). A shard
  // that is missing or bad, or lacks a tensor the index assigns it, is an error.
  static SafetensorsCheckpoint open_index(const std::string& index_path);

  // Null when the checkpoint has no tensor of that name.
  const SafetensorsTensor* find(std::string_view name) const;
  // Throws h2o::Error "<source>: missing tensor <name>".
  const SafetensorsTensor& require(std::string_view name) const;
  // Every tensor, in name order.
  const std::vector<const SafetensorsTensor*>& tensors() const { return sorted_; }
  size_t shard_count() const { return shards_.size(); }
  bool sharded() const { return sharded_; }
  // The file (single) or index (sharded) path, for messages.
  const std::string& source_name() const { return source_name_; }

 private:
  std::string source_name_;
  bool sharded_ = false;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;  // heap-owned: tensor pointers stay valid
  std::map<std::string, const SafetensorsTensor*, std::less<>> by_name_;
  std::vector<const SafetensorsTensor*> sorted_;
};

}  // namespace h2o
