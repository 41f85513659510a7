#include "model/forward.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/check.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace h2o {

// --- LayerContext: the few operations a block is written with ---

void LayerContext::linear(LayerRole weight, LayerRole bias, const float* in, float* out) const {
  linear_many({{weight, bias, out}}, in);
}

void LayerContext::linear_many(std::initializer_list<Projection> projections, const float* in) const {
  MatmulProduct products[4];
  if (projections.size() > std::size(products))
    fail("internal: at most {} projections share an input", std::size(products));
  size_t n = 0;
  for (const Projection& p : projections) products[n++] = MatmulProduct{&w.mat(p.weight), p.out};
  matmul_many(std::span(products, n), in, rows, pool_);
  for (const Projection& p : projections) {
    if (const float* b = w.vec(p.bias)) {
      const size_t cols = static_cast<size_t>(w.mat(p.weight).rows);
      for (size_t t = 0; t < static_cast<size_t>(rows); ++t) {
        float* o = p.out + t * cols;
        for (size_t i = 0; i < cols; ++i) o[i] += b[i];
      }
    }
  }
}

void LayerContext::norm(LayerRole weight, LayerRole bias, const float* in, float* out) const {
  const size_t D = static_cast<size_t>(config.dim);
  const float* g = w.vec(weight);
  const float* b = w.vec(bias);
  pool_.parallel_for(
      static_cast<size_t>(rows),
      [&](size_t begin, size_t end) {
        for (size_t t = begin; t < end; ++t) {
          if (config.norm == NormKind::Rms) {
            rmsnorm(out + t * D, in + t * D, g, config.dim, config.norm_eps);
          } else {
            layernorm(out + t * D, in + t * D, g, b, config.dim, config.norm_eps);
          }
        }
      },
      static_cast<size_t>(rows) * D * 4);
}

void LayerContext::add_to_residual(const float* y) const {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(config.dim);
  elementwise(n, 1, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) x[i] += y[i];
  });
}

void LayerContext::elementwise(size_t n, size_t ops_per_element, const std::function<void(size_t, size_t)>& fn) const {
  // Ranges of whole cache lines (16 floats) so that two threads never write one line.
  constexpr size_t kLine = 16;
  const size_t lines = (n + kLine - 1) / kLine;
  pool_.parallel_for(
      lines, [&](size_t begin, size_t end) { fn(begin * kLine, std::min(n, end * kLine)); }, n * ops_per_element);
}

void LayerContext::attend(float* q, float* k, const float* v, float* out) const {
  driver_.attend(layer, q, k, v, out, pool_);
}

// --- the driver ---

void Forward::ensure_scratch(int n_tokens) {
  if (n_tokens <= scratch_rows_) return;
  const auto& c = model_.config();
  const size_t T = static_cast<size_t>(n_tokens);
  const size_t D = static_cast<size_t>(c.dim), Q = static_cast<size_t>(c.q_dim()), KV = static_cast<size_t>(c.kv_dim());
  const size_t H = static_cast<size_t>(c.hidden_dim);
  x_.resize(T * D);
  ForwardScratch& s = scratch_;
  s.xn.resize(T * D);
  s.q.resize(T * Q);
  s.k.resize(T * KV);
  s.v.resize(T * KV);
  s.qkv.resize(T * (Q + 2 * KV));
  s.att.resize(T * Q);
  s.ffn_a.resize(T * H);
  s.ffn_b.resize(T * H);
  s.tmp.resize(T * D);
  s.tmp2.resize(T * D);
  embd_.resize(T * static_cast<size_t>(c.embed_dim));
  scratch_rows_ = n_tokens;
}

void Forward::step(const int32_t* tokens, const int32_t* positions, int n_tokens, KvCache& cache, int64_t tokens_seen,
                   bool all_rows, float* logits, ThreadPool& pool) {
  const StepSegment seg{tokens, positions, n_tokens, &cache, tokens_seen, all_rows, logits};
  step_batch(std::span(&seg, 1), pool);
}

void Forward::embed(std::span<const StepSegment> segments, ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const size_t D = static_cast<size_t>(c.dim), E = static_cast<size_t>(c.embed_dim);
  const bool project = w.has(ModelRole::ProjectIn);
  const Matrix& pos_embd = w.mat(ModelRole::PosEmbd);
  size_t row = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const StepSegment& s = segments[i];
    seg_first_row_[i] = row;
    for (int t = 0; t < s.n_tokens; ++t, ++row) {
      const int32_t tok = s.tokens[t];
      if (tok < 0 || tok >= c.vocab_size) fail("token id {} is outside the vocabulary", tok);
      matrix_row(w.mat(ModelRole::TokenEmbd), tok, project ? &embd_[row * E] : &x_[row * D]);
      pos_[row] = s.positions[t];
    }
    s.cache->begin_step(s.n_tokens);
  }
  const int T = static_cast<int>(row);
  if (project) matmul(w.mat(ModelRole::ProjectIn), embd_.data(), T, x_.data(), pool);
  if (pos_embd.data) {
    // Learned absolute positions: row p + offset (OPT's offset is 2).
    std::vector<float>& pe = scratch_.tmp;
    for (size_t r = 0; r < static_cast<size_t>(T); ++r) {
      const int64_t p = static_cast<int64_t>(pos_[r]) + c.position_offset;
      if (p < 0 || p >= pos_embd.rows) fail("position {} is beyond the model's {} learned positions", pos_[r], pos_embd.rows - c.position_offset);
      matrix_row(pos_embd, static_cast<int>(p), pe.data());
      for (size_t j = 0; j < D; ++j) x_[r * D + j] += pe[j];
    }
  }
}

void Forward::attend(int layer, float* q, float* k, const float* v, float* out, ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const size_t QD = static_cast<size_t>(c.q_dim()), KVD = static_cast<size_t>(c.kv_dim());
  const std::vector<size_t>& first = seg_first_row_;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const StepSegment& s = segments_[i];
    layer_segs_[i] = LayerSegment{q + first[i] * QD, k + first[i] * KVD, v + first[i] * KVD, &pos_[first[i]],
                                  s.n_tokens,        s.cache,          s.tokens_seen,     out + first[i] * QD};
  }
  layer_attention_.run(c.attention_shape(), model_.rope(), layer, layer_segs_, pool, observer_ ? &observer_ : nullptr);
}

void Forward::step_batch(std::span<const StepSegment> segments, ThreadPool& pool) {
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
  pos_.resize(total);
  seg_first_row_.resize(segments.size());
  layer_segs_.resize(segments.size());
  segments_ = segments;

  // Stack the segments' rows: segment i owns rows [first[i], first[i] + n_tokens).
  embed(segments, pool);
  const Architecture& arch = model_.architecture();
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerContext ctx(c, w.layers[static_cast<size_t>(l)], l, n_tokens, x_.data(), scratch_, pool, *this);
    arch.block(ctx);
  }
  gather_logits(segments, pool);
  segments_ = {};
}

void Forward::gather_logits(std::span<const StepSegment> segments, ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const size_t D = static_cast<size_t>(c.dim), V = static_cast<size_t>(c.vocab_size);
  const std::vector<size_t>& first = seg_first_row_;
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
  // xn rows 0..R-1: the wanted rows of the residual stream, through the final norm (if
  // the model has one) and the output projection (if any).
  float* h = scratch_.xn.data();
  const float* norm_w = w.vec(ModelRole::OutputNorm);
  for (size_t r = 0; r < R; ++r) {
    const float* xr = &x_[logit_rows_[r] * D];
    if (!norm_w) {
      std::memcpy(h + r * D, xr, D * sizeof(float));
    } else if (c.norm == NormKind::Rms) {
      rmsnorm(h + r * D, xr, norm_w, c.dim, c.norm_eps);
    } else {
      layernorm(h + r * D, xr, norm_w, w.vec(ModelRole::OutputNormBias), c.dim, c.norm_eps);
    }
  }
  if (w.has(ModelRole::ProjectOut)) {
    head_in_.resize(R * static_cast<size_t>(c.embed_dim));
    matmul(w.mat(ModelRole::ProjectOut), h, static_cast<int>(R), head_in_.data(), pool);
    h = head_in_.data();
  }
  const bool single = segments.size() == 1;
  float* out = single ? segments[0].logits : nullptr;
  if (!single) {
    logits_.resize(R * V);
    out = logits_.data();
  }
  matmul(w.mat(ModelRole::Output), h, static_cast<int>(R), out, pool);
  if (const float* b = w.vec(ModelRole::OutputBias)) {
    for (size_t r = 0; r < R; ++r) {
      for (size_t j = 0; j < V; ++j) out[r * V + j] += b[j];
    }
  }
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
