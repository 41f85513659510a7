#include "reference/naive_neox.h"

#include <stdexcept>

#include "reference/naive_gguf.h"

namespace h2o::ref {

NaiveNeox::NaiveNeox(const std::string& path) {
  const NaiveGguf g(path);
  if (g.string("general.architecture").value_or("") != "gptneox")
    throw std::runtime_error("naive neox: not a gptneox file " + path);
  const auto num = [&](const std::string& k) { return static_cast<int>(g.require_number("gptneox." + k)); };
  cfg_.dim = num("embedding_length");
  cfg_.hidden_dim = num("feed_forward_length");
  cfg_.n_layers = num("block_count");
  cfg_.n_heads = num("attention.head_count");
  cfg_.n_kv_heads = cfg_.n_heads;
  cfg_.seq_len = num("context_length");
  eps_ = g.require_number("gptneox.attention.layer_norm_epsilon");
  parallel_ = g.number_or("gptneox.use_parallel_residual", 1.0) != 0.0;
  rope_.neox = true;
  rope_.n_rot = num("rope.dimension_count");
  rope_.base = static_cast<float>(g.number_or("gptneox.rope.freq_base", 10000.0));
  std::vector<uint64_t> ne;
  embd_ = g.tensor("token_embd.weight", &ne);
  cfg_.vocab_size = static_cast<int>(ne[1]);
  cfg_.shared_classifier = false;
  out_w_ = g.tensor("output.weight");
  norm_w_ = g.tensor("output_norm.weight");
  norm_b_ = g.tensor("output_norm.bias");
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const auto t = [&](const std::string& n) { return g.tensor(b + n); };
    layers_.push_back(Layer{t("attn_norm.weight"), t("attn_norm.bias"), t("attn_qkv.weight"), t("attn_qkv.bias"),
                            t("attn_output.weight"), t("attn_output.bias"), t("ffn_norm.weight"), t("ffn_norm.bias"),
                            t("ffn_up.weight"), t("ffn_up.bias"), t("ffn_down.weight"), t("ffn_down.bias")});
  }
}

std::vector<Vec> NaiveNeox::step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                                 const Visibility& visible, std::vector<NaiveStepStats>* stats,
                                  const NaiveKvHooks* hooks) const {
  const int T = static_cast<int>(tokens.size()), d = cfg_.dim, hs = cfg_.head_size(), F = cfg_.hidden_dim;
  if (store.k.empty()) {
    store.k.resize(static_cast<size_t>(cfg_.n_layers));
    store.v.resize(static_cast<size_t>(cfg_.n_layers));
  }
  if (stats) stats->assign(static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads), NaiveStepStats{});
  std::vector<Vec> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const int tok = tokens[static_cast<size_t>(t)];
    if (tok < 0 || tok >= cfg_.vocab_size) throw std::runtime_error("naive forward: token out of range");
    x[static_cast<size_t>(t)].assign(embd_.begin() + static_cast<std::ptrdiff_t>(tok) * d,
                                     embd_.begin() + static_cast<std::ptrdiff_t>(tok + 1) * d);
  }
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const Layer& W = layers_[static_cast<size_t>(l)];
    auto& K = store.k[static_cast<size_t>(l)];
    auto& V = store.v[static_cast<size_t>(l)];
    if (static_cast<int>(K.size()) != first_pos) throw std::runtime_error("naive forward: positions out of order");
    std::vector<Vec> q(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      const Vec a = layernorm(x[static_cast<size_t>(t)], W.ln1_w, W.ln1_b, eps_);
      const Vec qkv = matvec(W.wqkv, a, 3 * d, d, W.bqkv);  // [Q | K | V]
      Vec& qt = q[static_cast<size_t>(t)];
      qt.assign(qkv.begin(), qkv.begin() + d);
      Vec k(qkv.begin() + d, qkv.begin() + 2 * d);
      Vec v(qkv.begin() + 2 * d, qkv.end());
      position_and_store(rope_, hooks, hs, first_pos + t, qt, k, v);
      K.push_back(std::move(k));
      V.push_back(std::move(v));
    }
    for (int t = 0; t < T; ++t) {
      Vec& xr = x[static_cast<size_t>(t)];
      const Vec att = attend(cfg_, l, K, V, q[static_cast<size_t>(t)], first_pos + t, t, T, visible, stats, rope_, hooks);
      const Vec o = matvec(W.wo, att, d, d, W.bo);
      // Parallel: the FFN reads LN2 of the layer's input; sequential: of x + attention.
      Vec h = xr;
      if (!parallel_) {
        for (int i = 0; i < d; ++i) h[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      }
      Vec up = matvec(W.w_up, layernorm(h, W.ln2_w, W.ln2_b, eps_), F, d, W.b_up);
      for (double& u : up) u = gelu_erf(u);
      const Vec f = matvec(W.w_down, up, d, F, W.b_down);
      for (int i = 0; i < d; ++i) xr[static_cast<size_t>(i)] += o[static_cast<size_t>(i)] + f[static_cast<size_t>(i)];
    }
  }
  std::vector<Vec> logits(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t)
    logits[static_cast<size_t>(t)] = matvec(out_w_, layernorm(x[static_cast<size_t>(t)], norm_w_, norm_b_, eps_),
                                            cfg_.vocab_size, d);
  return logits;
}

}  // namespace h2o::ref
