#include "eval/perplexity.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "common/check.h"

namespace h2o {

double token_nll(std::span<const float> logits, int32_t target) {
  double max = logits[0];
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return -(static_cast<double>(logits[static_cast<size_t>(target)]) - max - std::log(sum));
}

PerplexityResult perplexity(const std::shared_ptr<const Model>& model, std::span<const int32_t> text_tokens,
                            const PerplexityOptions& opts) {
  const int model_ctx = model->config().context_length;
  const int ctx = opts.ctx > 0 ? opts.ctx : model_ctx;
  if (ctx < 2) fail("--ctx: must be at least 2, got {}", ctx);
  if (ctx > model_ctx && resolve_kv(opts.session.kv, ctx).budget == 0)
    fail("--ctx: {} exceeds the model's context length {} (only a bounded --kv-policy streams past it)", ctx,
         model_ctx);
  if (opts.segment < 0) fail("--segment: must be at least 1, got {}", opts.segment);
  if (text_tokens.empty()) fail("perplexity: the text has no tokens");
  // The last token of a window is only a target, never fed (where the forward pass checks
  // ids): check them all here.
  for (const int32_t id : text_tokens) {
    if (id < 0 || id >= model->config().vocab_size)
      fail("perplexity: token id {} is outside the vocabulary of {}", id, model->config().vocab_size);
  }
  const size_t per_window = static_cast<size_t>(ctx - 1);
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  // Each window starts with one token that is not scored: BOS when the vocabulary adds one;
  // otherwise the text token just before the window, so the text's first token, which
  // nothing predicts, is the only one never scored.
  const Tokenizer& tok = model->tokenizer();
  const std::optional<int32_t> bos = tok.add_bos() ? tok.bos_id() : std::nullopt;
  const size_t first = bos ? 0 : 1;
  if (text_tokens.size() <= first) fail("perplexity: the text has one token and no BOS precedes it: nothing to score");

  PerplexityResult res;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> window;
  std::vector<float> logits;
  double total = 0.0;
  std::vector<double> seg_sum;
  std::vector<size_t> seg_n;
  for (size_t start = first; start < text_tokens.size(); start += per_window) {
    const size_t n = std::min(per_window, text_tokens.size() - start);
    window.assign(1, bos ? *bos : text_tokens[start - 1]);
    window.insert(window.end(), text_tokens.begin() + static_cast<long>(start),
                  text_tokens.begin() + static_cast<long>(start + n));
    // Percentage budgets are of the window length, the same for every window (a short
    // last window then simply never reaches the budget).
    SessionOptions so = opts.session;
    so.expected_length = ctx;
    Session session(model, so);
    if (res.n_windows == 0) res.kv = session.kv();
    // The last token's logits predict nothing in this window: feed all but it.
    session.feed(std::span(window).first(window.size() - 1), &logits);
    for (size_t i = 0; i + 1 < window.size(); ++i) {
      const double nll = token_nll(std::span(logits).subspan(i * V, V), window[i + 1]);
      res.nll.push_back(nll);
      total += nll;
      if (opts.segment > 0) {
        const size_t k = i / static_cast<size_t>(opts.segment);
        if (k >= seg_sum.size()) {
          seg_sum.resize(k + 1, 0.0);
          seg_n.resize(k + 1, 0);
        }
        seg_sum[k] += nll;
        ++seg_n[k];
      }
    }
    res.kv_bytes_peak = std::max(res.kv_bytes_peak, session.kv_bytes_peak());
    ++res.n_windows;
    res.n_tokens += n;
    if (opts.progress) opts.progress(res.n_tokens, text_tokens.size() - first);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.mean_nll = total / static_cast<double>(res.n_tokens);
  res.ppl = std::exp(res.mean_nll);
  for (size_t k = 0; k < seg_sum.size(); ++k) {
    PerplexitySegment s;
    s.first = k * static_cast<size_t>(opts.segment);
    s.n = seg_n[k];
    s.mean_nll = seg_sum[k] / static_cast<double>(seg_n[k]);
    s.ppl = std::exp(s.mean_nll);
    res.segments.push_back(s);
  }
  return res;
}

}  // namespace h2o
