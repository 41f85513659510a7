#include "model/llama_forward.h"

#include "attention/attention.h"
#include "common/check.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace h2o {

void LlamaForward::ensure_scratch(int n_tokens) {
  if (n_tokens <= scratch_rows_) return;
  const auto& c = model_.config();
  const size_t T = static_cast<size_t>(n_tokens);
  x_.resize(T * static_cast<size_t>(c.dim));
  xb_.resize(T * static_cast<size_t>(c.dim));
  q_.resize(T * static_cast<size_t>(c.q_dim()));
  k_.resize(T * static_cast<size_t>(c.kv_dim()));
  v_.resize(T * static_cast<size_t>(c.kv_dim()));
  att_.resize(T * static_cast<size_t>(c.q_dim()));
  hb_.resize(T * static_cast<size_t>(c.hidden_dim));
  hb2_.resize(T * static_cast<size_t>(c.hidden_dim));
  scratch_rows_ = n_tokens;
}

void LlamaForward::step(const int32_t* tokens, const int32_t* positions, int n_tokens, KvCache& cache,
                        int64_t tokens_seen, bool all_rows, float* logits, ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  ensure_scratch(n_tokens);
  const size_t T = static_cast<size_t>(n_tokens), D = static_cast<size_t>(c.dim);
  const size_t QD = static_cast<size_t>(c.q_dim()), KVD = static_cast<size_t>(c.kv_dim());
  const size_t HD = static_cast<size_t>(c.hidden_dim);

  for (size_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) fail("token id {} is outside the vocabulary", tokens[t]);
    matrix_row(w.token_embd, tokens[t], &x_[t * D]);
  }
  cache.begin_step(n_tokens);

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    for (size_t t = 0; t < T; ++t) rmsnorm(&xb_[t * D], &x_[t * D], L.attn_norm, c.dim, c.rms_eps);
    matmul(L.wq, xb_.data(), n_tokens, q_.data(), pool);
    matmul(L.wk, xb_.data(), n_tokens, k_.data(), pool);
    matmul(L.wv, xb_.data(), n_tokens, v_.data(), pool);
    for (size_t t = 0; t < T; ++t) {
      rope(&q_[t * QD], c.n_heads, c.head_dim, c.rope_dim, positions[t], c.rope_base, c.rope_style);
      rope(&k_[t * KVD], c.n_kv_heads, c.head_dim, c.rope_dim, positions[t], c.rope_base, c.rope_style);
    }
    cache.append(l, k_.data(), v_.data(), positions, n_tokens);
    attention(c, q_.data(), positions, n_tokens, cache.layer_view(l), att_.data(), pool, observer_ ? &observer_ : nullptr,
              l);
    cache.finish_step(l, tokens_seen);
    matmul(L.wo, att_.data(), n_tokens, xb_.data(), pool);
    for (size_t i = 0; i < T * D; ++i) x_[i] += xb_[i];

    for (size_t t = 0; t < T; ++t) rmsnorm(&xb_[t * D], &x_[t * D], L.ffn_norm, c.dim, c.rms_eps);
    matmul(L.w_gate, xb_.data(), n_tokens, hb_.data(), pool);
    matmul(L.w_up, xb_.data(), n_tokens, hb2_.data(), pool);
    for (size_t t = 0; t < T; ++t) swiglu(&hb_[t * HD], &hb2_[t * HD], c.hidden_dim);
    matmul(L.w_down, hb_.data(), n_tokens, xb_.data(), pool);
    for (size_t i = 0; i < T * D; ++i) x_[i] += xb_[i];
  }

  const size_t first = all_rows ? 0 : T - 1;
  for (size_t t = first; t < T; ++t) rmsnorm(&xb_[t * D], &x_[t * D], w.output_norm, c.dim, c.rms_eps);
  matmul(w.output, &xb_[first * D], static_cast<int>(T - first), logits, pool);
}

}  // namespace h2o
