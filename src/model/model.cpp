#include "model/model.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/check.h"
#include "common/json_file.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/safetensors.h"
#include "format/mapped_file.h"
#include "format/packed_quant.h"
#include "model/architecture.h"
#include "model/architectures/registry.h"
#include "model/gguf_config.h"
#include "model/hf_transform.h"

namespace h2o {
namespace {

constexpr int64_t kMaxDim = GgufArchKeys::kMaxDim;

void check_dim(const std::string& src, const char* what, int64_t v) {
  if (v <= 0 || v > kMaxDim) fail("{}: {} = {} is out of range", src, what, v);
}

// What every architecture's forward pass relies on, whatever the file said.
void validate_config(const std::string& src, const ModelConfig& c) {
  check_dim(src, "embedding length", c.dim);
  check_dim(src, "embedding width", c.embed_dim);
  check_dim(src, "feed-forward length", c.hidden_dim);
  check_dim(src, "layer count", c.n_layers);
  check_dim(src, "head count", c.n_heads);
  check_dim(src, "KV head count", c.n_kv_heads);
  check_dim(src, "head dimension", c.head_dim);
  check_dim(src, "vocabulary size", c.vocab_size);
  check_dim(src, "context length", c.context_length);
  check_dim(src, "query width", static_cast<int64_t>(c.n_heads) * c.head_dim);
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: head count {} is not a multiple of KV head count {}", src, c.n_heads, c.n_kv_heads);
  if (c.rope_dim != 0 && (c.rope_dim < 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0))
    fail("{}: RoPE dimension count {} does not fit head dimension {}", src, c.rope_dim, c.head_dim);
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps)) fail("{}: norm epsilon {} must be positive", src, c.norm_eps);
  if (c.rope_dim > 0 && (!(c.rope_base > 0.0f) || !std::isfinite(c.rope_base)))
    fail("{}: RoPE base {} must be positive and finite", src, c.rope_base);
}

std::string shape_string(const std::vector<uint64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? "x" : "") + std::to_string(ne[i]);
  return s;
}

// A 2-D weight [rows][cols] (GGUF ne = [cols, rows]) after checking its shape.
Matrix gguf_matrix(const GgufFile& f, const GgufTensor& t, const TensorShape& want) {
  const bool shape_ok = t.ne.size() >= 2 && t.ne[0] == static_cast<uint64_t>(want.cols) &&
                        t.ne[1] == static_cast<uint64_t>(want.rows) && (t.ne.size() < 3 || t.ne[2] == 1) &&
                        (t.ne.size() < 4 || t.ne[3] == 1);
  if (!shape_ok)
    fail("{}: tensor {} has shape [{}], expected [{}x{}]", f.source_name(), printable_string(t.name),
         shape_string(t.ne), want.cols, want.rows);
  Matrix m;
  m.type = t.type;
  m.rows = static_cast<int>(want.rows);
  m.cols = static_cast<int>(want.cols);
  m.data = t.data;
  m.row_bytes = row_bytes(t.type, static_cast<size_t>(want.cols));
  return m;
}

// A 1-D weight of n values as f32: in the mapping if stored so, else decoded once.
const float* gguf_vector(const GgufFile& f, const GgufTensor& t, int64_t n, ModelWeights& w) {
  if (t.n_elements != static_cast<uint64_t>(n) || t.ne.empty() || t.ne[0] != static_cast<uint64_t>(n))
    fail("{}: tensor {} has shape [{}], expected [{}]", f.source_name(), printable_string(t.name),
         shape_string(t.ne), n);
  if (t.type == TensorType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);
  auto& out = w.decoded.emplace_back(static_cast<size_t>(n));
  dequantize_row(t.type, t.data, out.data(), static_cast<size_t>(n));
  return out.data();
}

Matrix f32_matrix(const float* p, int rows, int cols) {
  Matrix m;
  m.type = TensorType::F32;
  m.rows = rows;
  m.cols = cols;
  m.data = reinterpret_cast<const uint8_t*>(p);
  m.row_bytes = static_cast<size_t>(cols) * sizeof(float);
  return m;
}

bool file_starts_with(const std::string& path, const char* magic) {
  std::ifstream in(path, std::ios::binary);
  char buf[4] = {};
  in.read(buf, 4);
  return in.gcount() == 4 && std::memcmp(buf, magic, 4) == 0;
}

}  // namespace

std::vector<Matrix*> ModelWeights::product_matrices() {
  std::vector<Matrix*> out;
  for (ModelRole r : {ModelRole::ProjectIn, ModelRole::ProjectOut, ModelRole::Output}) {
    if (mat(r).data) out.push_back(&mat(r));
  }
  for (LayerWeights& l : layers) {
    for (Matrix& m : l.matrices) {
      if (m.data) out.push_back(&m);
    }
  }
  return out;
}

size_t ModelWeights::weight_bytes() const {
  size_t total = 0;
  for (const Matrix& m : matrices) total += m.bytes();
  if (mat(ModelRole::Output).data == mat(ModelRole::TokenEmbd).data) total -= mat(ModelRole::Output).bytes();
  for (const LayerWeights& l : layers) {
    for (const Matrix& m : l.matrices) total += m.bytes();
  }
  return total;
}

Model::Model() = default;
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

std::shared_ptr<const Model> Model::load(const ModelLoadOptions& opts) {
  if (opts.path.empty()) fail("no model file given (-m)");
  auto model = std::shared_ptr<Model>(new Model());
  model->path_ = opts.path;
  std::error_code ec;
  if (std::filesystem::is_directory(opts.path, ec)) {
    model->load_hf(opts.path);
  } else if (MappedFile probe(opts.path); probe.size() < 4) {  // clear errors for missing paths
    fail("{}: file is too small to be a model ({} bytes)", opts.path, probe.size());
  } else if (file_starts_with(opts.path, "GGUF")) {
    model->load_gguf(opts.path);
  } else {
    if (opts.tokenizer_path.empty())
      fail("{}: not a GGUF file; a llama2.c checkpoint needs --tokenizer tokenizer.bin", opts.path);
    model->load_llama2c(opts.path, opts.tokenizer_path);
  }
  const ModelConfig& c = model->config_;
  if (c.rope_dim > 0) {
    std::span<const float> factors = c.rope_factors;  // from config.json; a GGUF file has the tensor
    if (const float* ff = model->weights_.vec(ModelRole::RopeFreqs)) factors = {ff, static_cast<size_t>(c.rope_dim / 2)};
    try {
      model->rope_ = RopeTable(c.rope_style, c.head_dim, c.rope_dim, c.rope_base, c.rope_freq_scale, factors);
    } catch (const Error& e) {
      fail("{}: {}", opts.path, e.what());
    }
  }
  // Embedding tables may be padded past the tokenizer (OPT: 50261 tokens, 50272 rows).
  if (model->tokenizer_->vocab_size() > c.vocab_size)
    fail("{}: tokenizer has {} tokens but the model's vocabulary is {}", opts.path, model->tokenizer_->vocab_size(),
         c.vocab_size);
  return model;
}

void Model::load_gguf(const std::string& path) {
  gguf_ = std::make_unique<GgufFile>(GgufFile::open(path));
  const GgufFile& f = *gguf_;
  const std::string arch_name = f.require_string("general.architecture");
  try {
    arch_ = &find_architecture(arch_name);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  ModelConfig& c = config_;
  c = arch_->read_gguf(f);
  c.arch = arch_name;
  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() < 2) fail("{}: missing or malformed tensor token_embd.weight", path);
  check_dim(path, "vocabulary size", static_cast<int64_t>(std::min<uint64_t>(embd->ne[1], 1ull << 40)));
  c.vocab_size = static_cast<int>(embd->ne[1]);
  validate_config(path, c);

  tokenizer_ = load_tokenizer_from_gguf(f);
  ModelWeights& w = weights_;
  w.layers.resize(static_cast<size_t>(c.n_layers));
  std::set<std::string> used;
  for_each_tensor(*arch_, c, [&](const TensorRef& ref) {
    const GgufTensor* t = f.find_tensor(ref.gguf_name);
    if (!t) {
      if (ref.optional) return;
      fail("{}: missing tensor {} (architecture {})", path, ref.gguf_name, c.arch);
    }
    used.insert(ref.gguf_name);
    Matrix* m = ref.per_layer ? &w.layers[static_cast<size_t>(ref.layer)].mat(ref.layer_role) : &w.mat(ref.model_role);
    const float** v =
        ref.per_layer ? &w.layers[static_cast<size_t>(ref.layer)].vec(ref.layer_role) : &w.vec(ref.model_role);
    if (ref.kind == TensorKind::Matrix) {
      *m = gguf_matrix(f, *t, ref.shape);
    } else {
      *v = gguf_vector(f, *t, ref.shape.cols, w);
    }
  });
  // Every tensor must be one the architecture reads: extra layers (a block_count that is
  // too small) or unknown tensors mean the metadata does not describe the file.
  for (const GgufTensor& t : f.tensors()) {
    if (!used.contains(t.name))
      fail("{}: unexpected tensor {} (not part of a {}-layer {} model as the metadata describes it)", path,
           printable_string(t.name), c.n_layers, c.arch);
  }
  if (!w.has(ModelRole::Output) || c.tied_head) w.mat(ModelRole::Output) = w.mat(ModelRole::TokenEmbd);
  // The token embedding keeps its pages of the mapping: lookups read its rows as stored.
  pack_matrices(w.product_matrices(), w.mat(ModelRole::TokenEmbd).data, w.packed);
}

void Model::load_llama2c(const std::string& path, const std::string& tokenizer_path) {
  l2c_ = std::make_unique<Llama2cCheckpoint>(Llama2cCheckpoint::open(path));
  const Llama2cConfig& h = l2c_->config();
  arch_ = &llama_architecture();
  ModelConfig& c = config_;
  c.arch = "llama";
  c.dim = h.dim;
  c.embed_dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.context_length = h.seq_len;
  check_dim(path, "head count", c.n_heads);
  if (c.dim % c.n_heads != 0) fail("{}: embedding length {} is not a multiple of head count {}", path, c.dim, c.n_heads);
  c.head_dim = h.dim / h.n_heads;
  c.rope_dim = c.head_dim;
  c.rope_style = RopeStyle::Normal;
  c.norm_eps = 1e-5f;  // run.c hard-codes it
  c.rope_base = 10000.0f;
  validate_config(path, c);
  tokenizer_ = load_tokenizer_from_llama2c(tokenizer_path, c.vocab_size);

  // llama2.c's fixed layout, mapped to the llama architecture's roles.
  const Llama2cWeights& s = l2c_->weights();
  ModelWeights& w = weights_;
  const size_t D = static_cast<size_t>(c.dim), Q = static_cast<size_t>(c.q_dim()), KV = static_cast<size_t>(c.kv_dim()),
               H = static_cast<size_t>(c.hidden_dim);
  using L = LayerRole;
  w.mat(ModelRole::TokenEmbd) = f32_matrix(s.token_embedding, c.vocab_size, c.dim);
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights& lw = w.layers[l];
    lw.vec(L::AttnNorm) = s.rms_att + l * D;
    lw.mat(L::AttnQ) = f32_matrix(s.wq + l * Q * D, c.q_dim(), c.dim);
    lw.mat(L::AttnK) = f32_matrix(s.wk + l * KV * D, c.kv_dim(), c.dim);
    lw.mat(L::AttnV) = f32_matrix(s.wv + l * KV * D, c.kv_dim(), c.dim);
    lw.mat(L::AttnOut) = f32_matrix(s.wo + l * D * Q, c.dim, c.q_dim());
    lw.vec(L::FfnNorm) = s.rms_ffn + l * D;
    lw.mat(L::FfnGate) = f32_matrix(s.w1 + l * H * D, c.hidden_dim, c.dim);
    lw.mat(L::FfnDown) = f32_matrix(s.w2 + l * D * H, c.dim, c.hidden_dim);
    lw.mat(L::FfnUp) = f32_matrix(s.w3 + l * H * D, c.hidden_dim, c.dim);
  }
  w.vec(ModelRole::OutputNorm) = s.rms_final;
  w.mat(ModelRole::Output) = f32_matrix(s.wcls, c.vocab_size, c.dim);
}

// A Hugging Face directory (model-families.md §2): config.json read by the architecture
// that claims its model_type, the safetensors tensors named by the architecture's table
// (the "model." prefix optional, as transformers allows), rows reordered where the
// architecture asks (model/hf_transform.h), tokenizer.json.
void Model::load_hf(const std::string& dir) {
  const std::string config_path = hf_config_path(dir);
  const nlohmann::json config = read_json_file(config_path);
  const JsonFields j(config, config_path);
  const std::string model_type = j.string("model_type", std::nullopt);
  try {
    arch_ = &find_hf_architecture(model_type);
  } catch (const Error& e) {
    fail("{}: {}", config_path, e.what());
  }
  ModelConfig& c = config_;
  c = arch_->read_hf(j);
  hf_ = std::make_unique<SafetensorsCheckpoint>(SafetensorsCheckpoint::open_dir(dir));
  const SafetensorsCheckpoint& ck = *hf_;
  const auto find = [&](const std::string& name) -> const SafetensorsTensor* {
    if (const SafetensorsTensor* t = ck.find(name)) return t;
    return name.starts_with("model.") ? ck.find(std::string_view(name).substr(6)) : nullptr;
  };
  // The vocabulary is the embedding's row count (config.json's vocab_size says the same).
  std::string embd_name;
  for_each_tensor(*arch_, c, [&](const TensorRef& r) {
    if (!r.per_layer && r.model_role == ModelRole::TokenEmbd) embd_name = r.hf_name;
  });
  const SafetensorsTensor* embd = find(embd_name);
  if (!embd || embd->shape.size() != 2) fail("{}: missing or malformed tensor {}", ck.source_name(), embd_name);
  check_dim(dir, "vocabulary size", static_cast<int64_t>(std::min<uint64_t>(embd->shape[0], 1ull << 40)));
  c.vocab_size = static_cast<int>(embd->shape[0]);
  validate_config(dir, c);
  tokenizer_ = load_tokenizer_from_hf_dir(dir);

  ModelWeights& w = weights_;
  w.layers.resize(static_cast<size_t>(c.n_layers));
  std::set<std::string> used;
  for_each_tensor(*arch_, c, [&](const TensorRef& ref) {
    if (ref.hf_name.empty()) return;
    const SafetensorsTensor* t = find(ref.hf_name);
    if (!t) {
      if (ref.optional) return;
      fail("{}: missing tensor {} ({})", ck.source_name(), ref.hf_name, c.arch);
    }
    used.insert(t->name);
    const bool matrix = ref.kind == TensorKind::Matrix;
    const bool shape_ok = matrix ? t->shape.size() == 2 && t->shape[0] == static_cast<uint64_t>(ref.shape.rows) &&
                                       t->shape[1] == static_cast<uint64_t>(ref.shape.cols)
                                 : t->shape.size() == 1 && t->shape[0] == static_cast<uint64_t>(ref.shape.cols);
    if (!shape_ok) {
      std::string shape;
      for (size_t i = 0; i < t->shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t->shape[i]);
      fail("{}: tensor {} has shape [{}], expected [{}]", t->file, printable_string(t->name), shape,
           matrix ? fmt::format("{}x{}", ref.shape.rows, ref.shape.cols) : std::to_string(ref.shape.cols));
    }
    const TensorType type = t->weight_type();
    const int64_t rows = matrix ? ref.shape.rows : ref.shape.cols;  // a vector: one value per "row"
    const size_t unit = matrix ? row_bytes(type, static_cast<size_t>(ref.shape.cols)) : traits(type).block_bytes;
    const std::vector<uint32_t> order = hf_row_order(ref.hf_transform, c, rows);
    // Rows as stored, or reordered into a copy (also when the writer left the data unaligned).
    const uint8_t* data = t->data;
    if (ref.hf_transform != HfTransform::None || !t->data_aligned()) {
      AlignedBuffer& buf = w.owned.emplace_back(static_cast<size_t>(rows) * unit);
      for (size_t r = 0; r < order.size(); ++r) std::memcpy(buf.data() + r * unit, t->data + order[r] * unit, unit);
      data = buf.data();
    }
    Matrix* m = ref.per_layer ? &w.layers[static_cast<size_t>(ref.layer)].mat(ref.layer_role) : &w.mat(ref.model_role);
    const float** v =
        ref.per_layer ? &w.layers[static_cast<size_t>(ref.layer)].vec(ref.layer_role) : &w.vec(ref.model_role);
    if (matrix) {
      m->type = type;
      m->rows = static_cast<int>(ref.shape.rows);
      m->cols = static_cast<int>(ref.shape.cols);
      m->data = data;
      m->row_bytes = unit;
    } else {
      auto& out = w.decoded.emplace_back(static_cast<size_t>(ref.shape.cols));
      dequantize_row(type, data, out.data(), out.size());
      *v = out.data();
    }
  });
  // Buffers of old checkpoints that are no weights (llama.cpp's converter skips them too).
  const auto ignorable = [](std::string_view n) {
    return n.ends_with(".rotary_emb.inv_freq") || n.ends_with(".attention.bias") ||
           n.ends_with(".attention.masked_bias");
  };
  for (const SafetensorsTensor* t : ck.tensors()) {
    if (!used.contains(t->name) && !ignorable(t->name))
      fail("{}: unexpected tensor {} (not part of a {}-layer {} model as config.json describes it)", t->file,
           printable_string(t->name), c.n_layers, c.arch);
  }
  if (!w.has(ModelRole::Output) || c.tied_head) w.mat(ModelRole::Output) = w.mat(ModelRole::TokenEmbd);
}

std::string Model::describe() const {
  const auto& c = config_;
  std::map<std::string, int> types;
  for (const auto& l : weights_.layers) {
    for (const Matrix& m : l.matrices) {
      if (m.data) ++types[std::string(traits(m.type).name)];
    }
  }
  std::string t;
  for (const auto& [name, n] : types) t += (t.empty() ? "" : ",") + name;
  return fmt::format("{} dim {} hidden {} layers {} heads {}/{} vocab {} ctx {} weights {}", c.arch, c.dim,
                     c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.context_length, t);
}

}  // namespace h2o
