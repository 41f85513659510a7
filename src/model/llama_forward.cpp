#include "model/llama_forward.h"

#include <cstring>

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
  const StepSegment seg{tokens, positions, n_tokens, &cache, tokens_seen, all_rows, logits};
  step_batch(std::span(&seg, 1), pool);
}

void LlamaForward::step_batch(std::span<const StepSegment> segments, ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  size_t total = 0;
  for (const StepSegment& s : segments) {
    if (s.n_tokens <= 0 || s.cache == nullptr) fail("internal: empty step segment");
    total += static_cast<size_t>(s.n_tokens);
  }
  if (total == 0) return;
  const int n_tokens = static_cast<int>(total);
  ensure_scratch(n_tokens);
  const size_t T = total, D = static_cast<size_t>(c.dim);
  const size_t QD = static_cast<size_t>(c.q_dim()), KVD = static_cast<size_t>(c.kv_dim());
  const size_t HD = static_cast<size_t>(c.hidden_dim), V = static_cast<size_t>(c.vocab_size);

  // Stack the segments' rows: segment i owns rows [first[i], first[i] + n_tokens).
  pos_.resize(T);
  std::vector<size_t>& first = seg_first_row_;
  first.resize(segments.size());
  for (size_t i = 0, row = 0; i < segments.size(); ++i) {
    const StepSegment& s = segments[i];
    first[i] = row;
    for (int t = 0; t < s.n_tokens; ++t, ++row) {
      const int32_t tok = s.tokens[t];
      if (tok < 0 || tok >= c.vocab_size) fail("token id {} is outside the vocabulary", tok);
      matrix_row(w.token_embd, tok, &x_[row * D]);
      pos_[row] = s.positions[t];
    }
    s.cache->begin_step(s.n_tokens);
  }
  layer_segs_.resize(segments.size());
  const AttentionShape shape = c.attention_shape();

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    for (size_t t = 0; t < T; ++t) rmsnorm(&xb_[t * D], &x_[t * D], L.attn_norm, c.dim, c.rms_eps);
    matmul(L.wq, xb_.data(), n_tokens, q_.data(), pool);
    matmul(L.wk, xb_.data(), n_tokens, k_.data(), pool);
    matmul(L.wv, xb_.data(), n_tokens, v_.data(), pool);
    for (size_t i = 0; i < segments.size(); ++i) {
      const StepSegment& s = segments[i];
      layer_segs_[i] = LayerSegment{&q_[first[i] * QD], &k_[first[i] * KVD], &v_[first[i] * KVD], &pos_[first[i]],
                                    s.n_tokens,        s.cache,          s.tokens_seen,     &att_[first[i] * QD]};
    }
    layer_attention_.run(shape, model_.rope(), l, layer_segs_, pool, observer_ ? &observer_ : nullptr);
    matmul(L.wo, att_.data(), n_tokens, xb_.data(), pool);
    for (size_t i = 0; i < T * D; ++i) x_[i] += xb_[i];

    for (size_t t = 0; t < T; ++t) rmsnorm(&xb_[t * D], &x_[t * D], L.ffn_norm, c.dim, c.rms_eps);
    matmul(L.w_gate, xb_.data(), n_tokens, hb_.data(), pool);
    matmul(L.w_up, xb_.data(), n_tokens, hb2_.data(), pool);
    for (size_t t = 0; t < T; ++t) swiglu(&hb_[t * HD], &hb2_[t * HD], c.hidden_dim);
    matmul(L.w_down, hb_.data(), n_tokens, xb_.data(), pool);
    for (size_t i = 0; i < T * D; ++i) x_[i] += xb_[i];
  }

  // Logits only for the rows that want them, gathered so the output matrix is read once.
  logit_rows_.clear();
  for (size_t i = 0; i < segments.size(); ++i) {
    const StepSegment& s = segments[i];
    if (!s.logits) continue;
    const size_t n = static_cast<size_t>(s.n_tokens);
    for (size_t t = s.all_rows ? 0 : n - 1; t < n; ++t) logit_rows_.push_back(first[i] + t);
  }
  if (logit_rows_.empty()) return;
  const size_t R = logit_rows_.size();
  // xb_ rows 0..R-1: the wanted rows of the residual stream, normed.
  for (size_t r = 0; r < R; ++r) rmsnorm(&xb_[r * D], &x_[logit_rows_[r] * D], w.output_norm, c.dim, c.rms_eps);
  const bool single = segments.size() == 1;
  float* out = single ? segments[0].logits : nullptr;
  if (!single) {
    logits_.resize(R * V);
    out = logits_.data();
  }
  matmul(w.output, xb_.data(), static_cast<int>(R), out, pool);
  if (single) return;
  for (size_t i = 0, r = 0; i < segments.size(); ++i) {
    const StepSegment& s = segments[i];
    if (!s.logits) continue;
    const size_t rows = s.all_rows ? static_cast<size_t>(s.n_tokens) : 1;
    std::memcpy(s.logits, &logits_[r * V], rows * V * sizeof(float));
    r += rows;
  }
}

}  // namespace h2o
