#include "format/inspect.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/check.h"
#include "common/json_file.h"
#include "common/printable.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/mapped_file.h"
#include "format/safetensors.h"

namespace h2o {
namespace {

constexpr size_t kMaxDisplayItems = 8;  // array elements shown before "... (N items)"
constexpr size_t kMaxKeyColumn = 48;    // longer keys overflow their column

std::string type_display(const GgufValue& v) {
  if (v.type != GgufValueType::ARRAY) return std::string(gguf_value_type_name(v.type));
  const auto& a = std::get<GgufArray>(v.value);
  return fmt::format("ARRAY[{}]", gguf_value_type_name(a.elem_type));
}

InspectReport inspect_gguf(const std::string& path) {
  const GgufFile g = GgufFile::open(path);
  InspectReport r;
  r.format = ModelFormat::GGUF;
  r.format_description = fmt::format("GGUF v{}, alignment {}, tensor data at offset {}",
                                     g.version(), g.alignment(), g.data_offset());
  for (const auto& key : g.key_order()) {
    const GgufValue& v = *g.find(key);
    r.metadata.push_back({printable_string(key), type_display(v),
                          v.to_display_string(kMaxDisplayItems)});
  }
  for (const auto& t : g.tensors()) {
    r.tensors.push_back({printable_string(t.name), std::string(traits(t.type).name), t.ne,
                         t.n_elements, t.n_bytes, g.data_offset() + t.offset});
  }
  return r;
}

InspectReport inspect_llama2c(const std::string& path) {
  const auto ck = Llama2cCheckpoint::open(path);
  const Llama2cConfig& c = ck.config();
  InspectReport r;
  r.format = ModelFormat::LLAMA2C;
  r.format_description = "llama2.c legacy (version 0) checkpoint, fp32";
  const std::pair<const char*, int32_t> fields[] = {
      {"dim", c.dim},           {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
      {"n_heads", c.n_heads},   {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
      {"seq_len", c.seq_len},
  };
  for (const auto& [key, value] : fields) r.metadata.push_back({key, "INT32", std::to_string(value)});
  r.metadata.push_back({"shared_classifier", "BOOL", c.shared_classifier ? "true" : "false"});

  const auto u = [](int32_t v) { return static_cast<uint64_t>(v); };
  const uint64_t head_size = u(c.dim) / u(c.n_heads);
  const uint64_t q_dim = u(c.n_heads) * head_size;
  const uint64_t kv_dim = u(c.n_kv_heads) * head_size;
  const uint64_t dim = u(c.dim), hidden = u(c.hidden_dim), layers = u(c.n_layers);
  const uint64_t vocab = u(c.vocab_size);
  const Llama2cWeights& w = ck.weights();
  // Row-major [L][rows][cols] arrays, listed in ggml order (cols first) like GGUF shapes.
  const std::tuple<const char*, const float*, std::vector<uint64_t>> tensors[] = {
      {"token_embedding_table", w.token_embedding, {dim, vocab}},
      {"rms_att_weight", w.rms_att, {dim, layers}},
      {"wq", w.wq, {dim, q_dim, layers}},
      {"wk", w.wk, {dim, kv_dim, layers}},
      {"wv", w.wv, {dim, kv_dim, layers}},
      {"wo", w.wo, {q_dim, dim, layers}},
      {"rms_ffn_weight", w.rms_ffn, {dim, layers}},
      {"w1", w.w1, {dim, hidden, layers}},
      {"w2", w.w2, {hidden, dim, layers}},
      {"w3", w.w3, {dim, hidden, layers}},
      {"rms_final_weight", w.rms_final, {dim}},
  };
  const auto* base = reinterpret_cast<const uint8_t*>(w.token_embedding) - 7 * sizeof(int32_t);
  const auto add = [&](const char* name, const float* p, std::vector<uint64_t> shape) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;  // bounded by the file size the reader checked
    const auto offset = static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(p) - base);
    r.tensors.push_back({name, "F32", std::move(shape), n, n * sizeof(float), offset});
  };
  for (const auto& [name, p, shape] : tensors) add(name, p, shape);
  if (!c.shared_classifier) add("wcls", w.wcls, {dim, vocab});
  return r;
}

std::string with_commas(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto x = static_cast<double>(b);
  size_t u = 0;
  while (x >= 1024.0 && u + 1 < std::size(units)) {
    x /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", x, units[u]);
}

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return out + "]";
}

}  // namespace

ModelFormat detect_model_format(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return ModelFormat::HF_DIR;
  const MappedFile f(path);
  if (f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0) return ModelFormat::GGUF;
  return ModelFormat::LLAMA2C;
}

namespace {

// A Hugging Face directory: config.json's top-level fields as metadata (values as JSON),
// the checkpoint's tensors (single file or shards) with their shapes in ggml order.
InspectReport inspect_hf_dir(const std::string& dir) {
  InspectReport r;
  r.format = ModelFormat::HF_DIR;
  const std::string config_path = hf_config_path(dir);
  const nlohmann::json config = read_json_file(config_path);
  for (const auto& [key, value] : config.items()) {
    std::string v = value.is_string() ? value.get<std::string>()
                                      : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (v.size() > 120) v = v.substr(0, 117) + "...";
    r.metadata.push_back({printable_string(key), std::string(value.type_name()), printable_string(v)});
  }
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
  r.format_description = fmt::format("Hugging Face directory: config.json, {} ({} file{})",
                                     ckpt.sharded() ? "sharded safetensors" : "model.safetensors",
                                     ckpt.shard_count(), ckpt.shard_count() == 1 ? "" : "s");
  for (const SafetensorsTensor* t : ckpt.tensors()) {
    InspectTensor it;
    it.name = printable_string(t->name);
    it.type = std::string(dtype_name(t->dtype));
    it.shape.assign(t->shape.rbegin(), t->shape.rend());
    it.n_elements = t->n_elements;
    it.n_bytes = t->n_bytes;
    it.offset = t->offset;
    r.tensors.push_back(std::move(it));
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) r.file_bytes += e.file_size(ec);
  }
  return r;
}

}  // namespace

InspectReport inspect_model(const std::string& path) {
  const ModelFormat format = detect_model_format(path);
  InspectReport r = format == ModelFormat::HF_DIR ? inspect_hf_dir(path)
                    : format == ModelFormat::GGUF ? inspect_gguf(path)
                                                  : inspect_llama2c(path);
  r.path = path;
  if (format != ModelFormat::HF_DIR) r.file_bytes = MappedFile(path).size();
  for (const auto& t : r.tensors) {
    r.total_params += t.n_elements;
    r.total_bytes += t.n_bytes;
    auto it = std::find_if(r.types.begin(), r.types.end(), [&](const auto& c) { return c.type == t.type; });
    if (it == r.types.end()) it = r.types.insert(r.types.end(), {t.type, 0, 0});
    ++it->tensors;
    it->bytes += t.n_bytes;
  }
  return r;
}

std::string report_to_text(const InspectReport& r) {
  std::string out;
  out += fmt::format("file:       {}\n", printable_string(r.path));
  out += fmt::format("format:     {}\n", r.format_description);
  out += fmt::format("file size:  {} bytes ({})\n", with_commas(r.file_bytes),
                     human_bytes(r.file_bytes));
  out += fmt::format("parameters: {}\n", with_commas(r.total_params));
  out += fmt::format("tensors:    {} ({} bytes, {})\n", r.tensors.size(),
                     with_commas(r.total_bytes), human_bytes(r.total_bytes));
  std::string types;
  for (const auto& c : r.types) {
    types += fmt::format("{}{} x{} ({})", types.empty() ? "" : ", ", c.type, c.tensors, human_bytes(c.bytes));
  }
  out += fmt::format("types:      {}\n", types);

  size_t key_w = 3, type_w = 4;
  for (const auto& m : r.metadata) {
    key_w = std::max(key_w, std::min(m.key.size(), kMaxKeyColumn));
    type_w = std::max(type_w, m.type.size());
  }
  out += fmt::format("\nmetadata ({} keys):\n", r.metadata.size());
  out += fmt::format("  {:<{}}  {:<{}}  {}\n", "KEY", key_w, "TYPE", type_w, "VALUE");
  for (const auto& m : r.metadata) {
    out += fmt::format("  {:<{}}  {:<{}}  {}\n", m.key, key_w, m.type, type_w, m.value);
  }

  size_t name_w = 4, ttype_w = 4, shape_w = 5;
  for (const auto& t : r.tensors) {
    name_w = std::max(name_w, t.name.size());
    ttype_w = std::max(ttype_w, t.type.size());
    shape_w = std::max(shape_w, shape_text(t.shape).size());
  }
  out += fmt::format("\ntensors ({}; shape is innermost dimension first):\n", r.tensors.size());
  out += fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:>12}  {:>12}\n", "NAME", name_w, "TYPE",
                     ttype_w, "SHAPE", shape_w, "ELEMENTS", "BYTES");
  for (const auto& t : r.tensors) {
    out += fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:>12}  {:>12}\n", t.name, name_w, t.type,
                       ttype_w, shape_text(t.shape), shape_w, t.n_elements, t.n_bytes);
  }
  return out;
}

nlohmann::json report_to_json(const InspectReport& r) {
  nlohmann::json j;
  j["path"] = printable_string(r.path);
  j["format"] = r.format == ModelFormat::GGUF ? "gguf" : r.format == ModelFormat::HF_DIR ? "hf" : "llama2c";
  j["format_description"] = r.format_description;
  j["file_bytes"] = r.file_bytes;
  j["total_params"] = r.total_params;
  j["total_bytes"] = r.total_bytes;
  auto& types = j["types"] = nlohmann::json::object();
  for (const auto& c : r.types) types[c.type] = {{"tensors", c.tensors}, {"bytes", c.bytes}};
  auto& meta = j["metadata"] = nlohmann::json::array();
  for (const auto& m : r.metadata) meta.push_back({{"key", m.key}, {"type", m.type}, {"value", m.value}});
  auto& tensors = j["tensors"] = nlohmann::json::array();
  for (const auto& t : r.tensors) {
    tensors.push_back({{"name", t.name},
                       {"type", t.type},
                       {"shape", t.shape},
                       {"n_elements", t.n_elements},
                       {"bytes", t.n_bytes},
                       {"offset", t.offset}});
  }
  return j;
}

}  // namespace h2o
