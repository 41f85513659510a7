#include "reference/naive_opt.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

#include "reference/naive_gguf.h"  // half_to_double, bf16_to_double

namespace h2o::ref {
namespace {

// model.safetensors: u64 header length, JSON header, data. Only what the fixture needs.
class NaiveSafetensors {
 public:
  explicit NaiveSafetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("naive safetensors: cannot open " + path);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    header_ = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    data_ = 8 + n;
  }
  bool has(const std::string& name) const { return header_.contains(name); }
  Vec get(const std::string& name) const {
    if (!header_.contains(name)) throw std::runtime_error("naive safetensors: missing " + name);
    const auto& t = header_.at(name);
    const std::string dtype = t.at("dtype");
    const uint64_t begin = t.at("data_offsets")[0], end = t.at("data_offsets")[1];
    const size_t elem = dtype == "F32" ? 4 : 2;
    Vec out((end - begin) / elem);
    for (size_t i = 0; i < out.size(); ++i) {
      const uint8_t* p = &bytes_[data_ + begin + i * elem];
      if (dtype == "F32") {
        float f;
        std::memcpy(&f, p, 4);
        out[i] = f;
      } else {
        uint16_t h;
        std::memcpy(&h, p, 2);
        out[i] = dtype == "F16" ? half_to_double(h) : bf16_to_double(h);
      }
    }
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
  nlohmann::json header_;
  size_t data_ = 0;
};

}  // namespace

NaiveOpt::NaiveOpt(const std::string& dir) {
  std::ifstream cin(dir + "/config.json");
  const nlohmann::json c = nlohmann::json::parse(cin);
  cfg_.dim = c.at("hidden_size");
  cfg_.hidden_dim = c.at("ffn_dim");
  cfg_.n_layers = c.at("num_hidden_layers");
  cfg_.n_heads = cfg_.n_kv_heads = c.at("num_attention_heads");
  cfg_.seq_len = c.value("max_position_embeddings", 2048);
  proj_dim_ = c.value("word_embed_proj_dim", cfg_.dim);
  pre_ln_ = c.value("do_layer_norm_before", true);
  const NaiveSafetensors st(dir + "/model.safetensors");
  const auto name = [&](const std::string& n) { return st.has("model." + n) ? "model." + n : n; };
  embed_ = st.get(name("decoder.embed_tokens.weight"));
  cfg_.vocab_size = static_cast<int>(embed_.size() / static_cast<size_t>(proj_dim_));
  pos_ = st.get(name("decoder.embed_positions.weight"));
  if (st.has(name("decoder.project_in.weight"))) {
    project_in_ = st.get(name("decoder.project_in.weight"));
    project_out_ = st.get(name("decoder.project_out.weight"));
  }
  if (st.has(name("decoder.final_layer_norm.weight"))) {
    final_w_ = st.get(name("decoder.final_layer_norm.weight"));
    final_b_ = st.get(name("decoder.final_layer_norm.bias"));
  }
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "decoder.layers." + std::to_string(l) + ".";
    const auto t = [&](const std::string& n) { return st.get(name(p + n)); };
    layers_.push_back(Layer{t("self_attn_layer_norm.weight"), t("self_attn_layer_norm.bias"), t("self_attn.q_proj.weight"),
                            t("self_attn.q_proj.bias"), t("self_attn.k_proj.weight"), t("self_attn.k_proj.bias"),
                            t("self_attn.v_proj.weight"), t("self_attn.v_proj.bias"), t("self_attn.out_proj.weight"),
                            t("self_attn.out_proj.bias"), t("final_layer_norm.weight"), t("final_layer_norm.bias"),
                            t("fc1.weight"), t("fc1.bias"), t("fc2.weight"), t("fc2.bias")});
  }
}

std::vector<Vec> NaiveOpt::step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                                const Visibility& visible, std::vector<NaiveStepStats>* stats,
                                  const NaiveKvHooks* hooks) const {
  const int T = static_cast<int>(tokens.size()), d = cfg_.dim, P = proj_dim_, F = cfg_.hidden_dim;
  constexpr double kEps = 1e-5;
  if (store.k.empty()) {
    store.k.resize(static_cast<size_t>(cfg_.n_layers));
    store.v.resize(static_cast<size_t>(cfg_.n_layers));
  }
  if (stats) stats->assign(static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads), NaiveStepStats{});
  std::vector<Vec> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const int tok = tokens[static_cast<size_t>(t)];
    if (tok < 0 || tok >= cfg_.vocab_size) throw std::runtime_error("naive forward: token out of range");
    Vec e(embed_.begin() + static_cast<std::ptrdiff_t>(tok) * P, embed_.begin() + static_cast<std::ptrdiff_t>(tok + 1) * P);
    if (!project_in_.empty()) e = matvec(project_in_, e, d, P);
    const size_t row = static_cast<size_t>(first_pos + t + 2);  // OPT's position offset
    for (int i = 0; i < d; ++i) e[static_cast<size_t>(i)] += pos_[row * static_cast<size_t>(d) + static_cast<size_t>(i)];
    x[static_cast<size_t>(t)] = std::move(e);
  }
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const Layer& W = layers_[static_cast<size_t>(l)];
    auto& K = store.k[static_cast<size_t>(l)];
    auto& V = store.v[static_cast<size_t>(l)];
    std::vector<Vec> q(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      const Vec a = pre_ln_ ? layernorm(x[static_cast<size_t>(t)], W.ln1_w, W.ln1_b, kEps) : x[static_cast<size_t>(t)];
      // HF scales q after its bias and then uses scale 1 in attention; attend() scales
      // by 1/sqrt(head_size), so q is passed unscaled: the same product.
      q[static_cast<size_t>(t)] = matvec(W.wq, a, d, d, W.bq);
      Vec k = matvec(W.wk, a, d, d, W.bk);
      Vec v = matvec(W.wv, a, d, d, W.bv);
      position_and_store(rope_, hooks, cfg_.head_size(), first_pos + t, q[static_cast<size_t>(t)], k, v);
      K.push_back(std::move(k));
      V.push_back(std::move(v));
    }
    for (int t = 0; t < T; ++t) {
      Vec& xr = x[static_cast<size_t>(t)];
      const Vec att = attend(cfg_, l, K, V, q[static_cast<size_t>(t)], first_pos + t, t, T, visible, stats, rope_, hooks);
      const Vec o = matvec(W.wo, att, d, d, W.bo);
      for (int i = 0; i < d; ++i) xr[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      if (!pre_ln_) xr = layernorm(xr, W.ln1_w, W.ln1_b, kEps);
      Vec h = matvec(W.w1, pre_ln_ ? layernorm(xr, W.ln2_w, W.ln2_b, kEps) : xr, F, d, W.b1);
      for (double& v : h) v = v > 0.0 ? v : 0.0;
      const Vec f = matvec(W.w2, h, d, F, W.b2);
      for (int i = 0; i < d; ++i) xr[static_cast<size_t>(i)] += f[static_cast<size_t>(i)];
      if (!pre_ln_) xr = layernorm(xr, W.ln2_w, W.ln2_b, kEps);
    }
  }
  std::vector<Vec> logits(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    Vec h = final_w_.empty() ? x[static_cast<size_t>(t)] : layernorm(x[static_cast<size_t>(t)], final_w_, final_b_, kEps);
    if (!project_out_.empty()) h = matvec(project_out_, h, P, d);
    logits[static_cast<size_t>(t)] = matvec(embed_, h, cfg_.vocab_size, P);
  }
  return logits;
}

}  // namespace h2o::ref
