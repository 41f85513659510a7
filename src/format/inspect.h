// `h2o inspect`: a description of a model file (GGUF or llama2.c legacy checkpoint) or a
// Hugging Face directory (config.json fields, the safetensors tensors) --
// metadata, tensor table, totals -- as a readable text table or as JSON. The file format
// is detected from its first bytes, not its name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace h2o {

enum class ModelFormat { GGUF, LLAMA2C, HF_DIR };

// A Hugging Face directory if `path` is a directory; GGUF if the file starts with the
// "GGUF" magic, otherwise llama2.c (whose reader then validates the header). Throws h2o::Error for a missing or unreadable file.
ModelFormat detect_model_format(const std::string& path);

struct InspectMetadata {
  std::string key;    // printable (see printable_string)
  std::string type;   // "UINT32", "STRING", "ARRAY[STRING]", ...
  std::string value;  // display string, long arrays and strings abbreviated
};

struct InspectTensor {
  std::string name;            // printable
  std::string type;            // "F32", "Q8_0", ...
  std::vector<uint64_t> shape; // ggml order: innermost (contiguous) dimension first
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  uint64_t offset = 0;         // byte offset in the file
};

struct InspectReport {
  std::string path;
  ModelFormat format = ModelFormat::GGUF;
  std::string format_description;  // "GGUF v3, alignment 32", "llama2.c legacy (v0) ..."
  uint64_t file_bytes = 0;
  std::vector<InspectMetadata> metadata;
  std::vector<InspectTensor> tensors;
  uint64_t total_params = 0;  // sum of tensor element counts
  uint64_t total_bytes = 0;   // sum of tensor data bytes
  struct TypeCount {
    std::string type;
    uint64_t tensors = 0, bytes = 0;
  };
  std::vector<TypeCount> types;  // per tensor type, in order of first appearance
};

// Opens and validates the file; throws h2o::Error ("<path>: <problem>") on any defect.
InspectReport inspect_model(const std::string& path);

std::string report_to_text(const InspectReport& r);
nlohmann::json report_to_json(const InspectReport& r);

}  // namespace h2o
