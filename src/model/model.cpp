#include "model/model.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <map>

#include "common/check.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/mapped_file.h"
#include "format/packed_quant.h"

namespace h2o {
namespace {

constexpr int kMaxDim = 1 << 20;  // sanity bound on any single model dimension

void check_dim(const std::string& src, const char* what, int64_t v) {
  if (v <= 0 || v > kMaxDim) fail("{}: {} = {} is out of range", src, what, v);
}

void validate_config(const std::string& src, const ModelConfig& c) {
  check_dim(src, "embedding length", c.dim);
  check_dim(src, "feed-forward length", c.hidden_dim);
  check_dim(src, "layer count", c.n_layers);
  check_dim(src, "head count", c.n_heads);
  check_dim(src, "KV head count", c.n_kv_heads);
  check_dim(src, "vocabulary size", c.vocab_size);
  check_dim(src, "context length", c.context_length);
  if (c.dim % c.n_heads != 0) fail("{}: embedding length {} is not a multiple of head count {}", src, c.dim, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: head count {} is not a multiple of KV head count {}", src, c.n_heads, c.n_kv_heads);
  if (c.head_dim % 2 != 0) fail("{}: head dimension {} is odd; RoPE needs pairs", src, c.head_dim);
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    fail("{}: RoPE dimension count {} does not fit head dimension {}", src, c.rope_dim, c.head_dim);
  if (!(c.rms_eps > 0.0f) || !(c.rope_base > 0.0f)) fail("{}: RMS epsilon and RoPE base must be positive", src);
}

// Finds a 2-D weight [rows][cols] (GGUF ne = [cols, rows]) and checks its shape.
Matrix gguf_matrix(const GgufFile& f, const std::string& name, int rows, int cols) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) fail("{}: missing tensor {}", f.source_name(), name);
  const bool shape_ok = t->ne.size() >= 2 && t->ne[0] == static_cast<uint64_t>(cols) &&
                        t->ne[1] == static_cast<uint64_t>(rows) && (t->ne.size() < 3 || t->ne[2] == 1) &&
                        (t->ne.size() < 4 || t->ne[3] == 1);
  if (!shape_ok) {
    std::string shape;
    for (size_t i = 0; i < t->ne.size(); ++i) shape += (i ? "x" : "") + std::to_string(t->ne[i]);
    fail("{}: tensor {} has shape [{}], expected [{}x{}]", f.source_name(), name, shape, cols, rows);
  }
  Matrix m;
  m.type = t->type;
  m.rows = rows;
  m.cols = cols;
  m.data = t->data;
  m.row_bytes = row_bytes(t->type, static_cast<size_t>(cols));
  return m;
}

const float* gguf_vector(const GgufFile& f, const std::string& name, int n, ModelWeights& w) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) fail("{}: missing tensor {}", f.source_name(), name);
  if (t->n_elements != static_cast<uint64_t>(n))
    fail("{}: tensor {} has {} elements, expected {}", f.source_name(), name, t->n_elements, n);
  if (t->type == TensorType::F32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t->data);
  auto& out = w.decoded.emplace_back(static_cast<size_t>(n));
  dequantize_row(t->type, t->data, out.data(), static_cast<size_t>(n));
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

// Packs every Q8_0/Q4_0 matrix for the integer kernels (format/packed_quant.h); the token
// embedding keeps its pages of the mapping: lookups read its rows as stored.
void pack_quantized(ModelWeights& w) {
  std::vector<Matrix*> todo;
  for (auto& l : w.layers) {
    for (Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) todo.push_back(m);
  }
  todo.push_back(&w.output);
  pack_matrices(todo, w.token_embd.data, w.packed);
}

bool file_starts_with(const std::string& path, const char* magic) {
  std::ifstream in(path, std::ios::binary);
  char buf[4] = {};
  in.read(buf, 4);
  return in.gcount() == 4 && std::memcmp(buf, magic, 4) == 0;
}

}  // namespace

size_t ModelWeights::weight_bytes() const {
  size_t total = token_embd.bytes();
  for (const auto& l : layers) {
    total += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes();
    total += l.w_gate.bytes() + l.w_up.bytes() + l.w_down.bytes();
  }
  if (output.data != token_embd.data) total += output.bytes();
  return total;
}

Model::Model() = default;
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

std::shared_ptr<const Model> Model::load(const ModelLoadOptions& opts) {
  if (opts.path.empty()) fail("no model file given (-m)");
  MappedFile probe(opts.path);  // clear errors for missing paths and directories
  if (probe.size() < 4) fail("{}: file is too small to be a model ({} bytes)", opts.path, probe.size());
  auto model = std::shared_ptr<Model>(new Model());
  model->path_ = opts.path;
  if (file_starts_with(opts.path, "GGUF")) {
    model->load_gguf(opts.path);
  } else {
    if (opts.tokenizer_path.empty())
      fail("{}: not a GGUF file; a llama2.c checkpoint needs --tokenizer tokenizer.bin", opts.path);
    model->load_llama2c(opts.path, opts.tokenizer_path);
  }
  validate_config(opts.path, model->config_);
  if (model->tokenizer_->vocab_size() != model->config_.vocab_size)
    fail("{}: tokenizer has {} tokens but the model's vocabulary is {}", opts.path, model->tokenizer_->vocab_size(),
         model->config_.vocab_size);
  return model;
}

void Model::load_gguf(const std::string& path) {
  gguf_ = std::make_unique<GgufFile>(GgufFile::open(path));
  const GgufFile& f = *gguf_;
  ModelConfig& c = config_;
  c.arch = f.require_string("general.architecture");
  if (c.arch != "llama") fail("{}: architecture '{}' is not supported (supported: llama)", path, c.arch);
  const std::string a = c.arch + ".";
  auto int_key = [&](const std::string& k) {
    const int64_t v = f.require_int(a + k);
    check_dim(path, (a + k).c_str(), v);
    return static_cast<int>(v);
  };
  c.dim = int_key("embedding_length");
  c.hidden_dim = int_key("feed_forward_length");
  c.n_layers = int_key("block_count");
  c.n_heads = int_key("attention.head_count");
  c.n_kv_heads = f.find(a + "attention.head_count_kv") ? int_key("attention.head_count_kv") : c.n_heads;
  c.context_length = int_key("context_length");
  c.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_base = static_cast<float>(f.get_float(a + "rope.freq_base").value_or(10000.0));
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    fail("{}: embedding length {} is not a multiple of head count {}", path, c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  c.rope_dim = f.find(a + "rope.dimension_count") ? int_key("rope.dimension_count") : c.head_dim;
  c.rope_style = RopeStyle::Normal;

  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() < 2) fail("{}: missing or malformed tensor token_embd.weight", path);
  check_dim(path, "vocabulary size", static_cast<int64_t>(std::min<uint64_t>(embd->ne[1], 1ull << 40)));
  c.vocab_size = static_cast<int>(embd->ne[1]);
  validate_config(path, c);

  tokenizer_ = load_tokenizer_from_gguf(f);
  ModelWeights& w = weights_;
  w.token_embd = gguf_matrix(f, "token_embd.weight", c.vocab_size, c.dim);
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    L.attn_norm = gguf_vector(f, p + "attn_norm.weight", c.dim, w);
    L.wq = gguf_matrix(f, p + "attn_q.weight", c.q_dim(), c.dim);
    L.wk = gguf_matrix(f, p + "attn_k.weight", c.kv_dim(), c.dim);
    L.wv = gguf_matrix(f, p + "attn_v.weight", c.kv_dim(), c.dim);
    L.wo = gguf_matrix(f, p + "attn_output.weight", c.dim, c.q_dim());
    L.ffn_norm = gguf_vector(f, p + "ffn_norm.weight", c.dim, w);
    L.w_gate = gguf_matrix(f, p + "ffn_gate.weight", c.hidden_dim, c.dim);
    L.w_up = gguf_matrix(f, p + "ffn_up.weight", c.hidden_dim, c.dim);
    L.w_down = gguf_matrix(f, p + "ffn_down.weight", c.dim, c.hidden_dim);
  }
  w.output_norm = gguf_vector(f, "output_norm.weight", c.dim, w);
  w.output = f.find_tensor("output.weight") ? gguf_matrix(f, "output.weight", c.vocab_size, c.dim) : w.token_embd;
  pack_quantized(w);
}

void Model::load_llama2c(const std::string& path, const std::string& tokenizer_path) {
  l2c_ = std::make_unique<Llama2cCheckpoint>(Llama2cCheckpoint::open(path));
  const Llama2cConfig& h = l2c_->config();
  ModelConfig& c = config_;
  c.arch = "llama";
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.context_length = h.seq_len;
  c.head_dim = h.dim / h.n_heads;
  c.rope_dim = c.head_dim;
  c.rms_eps = 1e-5f;  // run.c hard-codes it
  c.rope_base = 10000.0f;
  validate_config(path, c);
  tokenizer_ = load_tokenizer_from_llama2c(tokenizer_path, c.vocab_size);

  const Llama2cWeights& s = l2c_->weights();
  ModelWeights& w = weights_;
  const size_t D = static_cast<size_t>(c.dim), Q = static_cast<size_t>(c.q_dim()), KV = static_cast<size_t>(c.kv_dim()),
               H = static_cast<size_t>(c.hidden_dim);
  w.token_embd = f32_matrix(s.token_embedding, c.vocab_size, c.dim);
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights& L = w.layers[l];
    L.attn_norm = s.rms_att + l * D;
    L.wq = f32_matrix(s.wq + l * Q * D, c.q_dim(), c.dim);
    L.wk = f32_matrix(s.wk + l * KV * D, c.kv_dim(), c.dim);
    L.wv = f32_matrix(s.wv + l * KV * D, c.kv_dim(), c.dim);
    L.wo = f32_matrix(s.wo + l * D * Q, c.dim, c.q_dim());
    L.ffn_norm = s.rms_ffn + l * D;
    L.w_gate = f32_matrix(s.w1 + l * H * D, c.hidden_dim, c.dim);
    L.w_down = f32_matrix(s.w2 + l * D * H, c.dim, c.hidden_dim);
    L.w_up = f32_matrix(s.w3 + l * H * D, c.hidden_dim, c.dim);
  }
  w.output_norm = s.rms_final;
  w.output = f32_matrix(s.wcls, c.vocab_size, c.dim);
}

std::string Model::describe() const {
  const auto& c = config_;
  std::map<std::string, int> types;
  for (const auto& l : weights_.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      ++types[std::string(traits(m->type).name)];
  }
  std::string t;
  for (const auto& [name, n] : types) t += (t.empty() ? "" : ",") + name;
  return fmt::format("{} dim {} hidden {} layers {} heads {}/{} vocab {} ctx {} weights {}", c.arch, c.dim,
                     c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.context_length, t);
}

}  // namespace h2o
