// Multiple-choice scoring: every choice is one fresh session over BOS + context +
// continuation (percentage budgets resolve against that length), and the continuation's
// tokens are scored from the logits before them, as `h2o perplexity` scores a window.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/check.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"

namespace h2o {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, n) without modulo bias; our own generator so the draw is the same on
// every standard library.
size_t draw_below(uint64_t& state, size_t n) {
  const uint64_t bound = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t r;
  do r = splitmix64(state);
  while (r >= limit);
  return static_cast<size_t>(r % bound);
}

template <typename T>
int argmax_first(const std::vector<T>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());  // first of equal maxima
}

double stderr_of(double p, size_t n) { return n > 1 ? std::sqrt(p * (1.0 - p) / static_cast<double>(n - 1)) : 0.0; }

}  // namespace

size_t choice_length(const std::string& continuation) {
  size_t chars = 0;
  for (unsigned char c : continuation) chars += (c & 0xC0) != 0x80;  // count UTF-8 lead bytes
  if (!continuation.empty() && continuation[0] == ' ') --chars;
  return std::max<size_t>(chars, 1);
}

std::string fewshot_prefix(const McTask& task, size_t item, int k, uint64_t seed) {
  if (k <= 0) return {};
  const size_t n = task.items.size();
  if (static_cast<size_t>(k) >= n)
    fail("--num-fewshot: {} examples need at least {} items, task {} has {}", k, k + 1, task.name, n);
  uint64_t state = seed ^ (0xd1b54a32d192ed03ULL * (static_cast<uint64_t>(item) + 1));
  std::vector<size_t> picked;
  while (picked.size() < static_cast<size_t>(k)) {
    const size_t j = draw_below(state, n);
    if (j != item && std::find(picked.begin(), picked.end(), j) == picked.end()) picked.push_back(j);
  }
  std::string prefix;
  for (size_t j : picked) {
    const McItem& ex = task.items[j];
    const McChoice& gold = ex.choices[static_cast<size_t>(ex.label)];
    prefix += gold.context + gold.continuation + "\n\n";
  }
  return prefix;
}

ScoredRequest build_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                            size_t max_tokens) {
  // lm-eval's _encode_pair: trailing whitespace (context.rstrip()) belongs to the continuation.
  const size_t last = context.find_last_not_of(" \t\n\r\f\v");
  const size_t keep = last == std::string::npos ? 0 : last + 1;
  const std::string ctx = context.substr(0, keep);
  const std::string cont = context.substr(keep) + continuation;
  if (cont.empty()) fail("empty continuation after context \"{}\"", context);
  const std::vector<int32_t> whole = tok.encode(ctx + cont, false);
  const size_t n_ctx = ctx.empty() ? 0 : tok.encode(ctx, false).size();
  if (whole.empty()) fail("continuation \"{}\" has no tokens", continuation);
  // The sequence starts with the BOS the vocabulary adds. Without one, a continuation with no
  // context gets EOS as its context (lm-eval's prefix token); otherwise the first token,
  // which nothing predicts, is never scored.
  const std::optional<int32_t> prefix = tok.add_bos() ? tok.bos_id() : ctx.empty() ? tok.eos_id() : std::nullopt;
  // A merge across the boundary can make the context's own encoding as long as the
  // whole; lm-eval would then score nothing. Score at least the last token.
  ScoredRequest r;
  r.n_cont = whole.size() - std::min(n_ctx, whole.size() - 1);
  if (max_tokens < 2) fail("a context of {} tokens cannot score anything", max_tokens);
  // Longer than the context: drop the oldest context tokens (lm-eval keeps the last
  // max_length tokens); BOS stays first. A continuation longer than the context itself
  // loses its first tokens too, where lm-eval would stop.
  const size_t keep_whole = std::min(whole.size(), max_tokens - (prefix ? 1 : 0));
  r.truncated = keep_whole < whole.size();
  r.n_cont = std::min(r.n_cont, prefix ? keep_whole : keep_whole - 1);
  if (r.n_cont == 0) fail("continuation \"{}\" has no token that can be scored", continuation);
  r.tokens.reserve(keep_whole + 1);
  if (prefix) r.tokens.push_back(*prefix);
  r.tokens.insert(r.tokens.end(), whole.end() - static_cast<long>(keep_whole), whole.end());
  return r;
}

EvalSummary evaluate(std::shared_ptr<const Model> model, const McTask& task, const EvalOptions& opts,
                     std::vector<ItemResult>* items) {
  const size_t n = opts.limit > 0 ? std::min(opts.limit, task.items.size()) : task.items.size();
  if (n == 0) fail("task {} has no items to evaluate", task.name);
  const Tokenizer& tok = model->tokenizer();
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  const size_t max_tokens = static_cast<size_t>(model->config().context_length);
  resolve_kv(opts.session.kv, 1000);  // bad settings fail before any work

  EvalSummary sum;
  sum.task = task.name;
  sum.n = n;
  size_t correct = 0, correct_norm = 0;
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) {
    const McItem& item = task.items[i];
    const std::string prefix = fewshot_prefix(task, i, opts.num_fewshot, opts.fewshot_seed);
    ItemResult res;
    res.id = item.id;
    res.label = item.label;
    for (const McChoice& choice : item.choices) {
      const ScoredRequest req = build_request(tok, prefix + choice.context, choice.continuation, max_tokens);
      SessionOptions so = opts.session;
      so.expected_length = static_cast<int>(req.tokens.size());
      Session session(model, so);
      // The last token's logits predict nothing: feed all but it.
      session.feed(std::span(req.tokens).first(req.tokens.size() - 1), &logits);
      double ll = 0.0;
      for (size_t t = req.tokens.size() - req.n_cont; t < req.tokens.size(); ++t)
        ll -= token_nll(std::span(logits).subspan((t - 1) * V, V), req.tokens[t]);
      sum.kv_bytes_peak = std::max(sum.kv_bytes_peak, session.kv_bytes_peak());
      res.loglik.push_back(ll);
      res.cont_bytes.push_back(choice.continuation.size());
      res.cont_chars.push_back(choice_length(choice.continuation));
      res.cont_tokens.push_back(static_cast<int>(req.n_cont));
      res.truncated = res.truncated || req.truncated;
    }
    sum.n_truncated += res.truncated;
    std::vector<double> normed(res.loglik.size());
    for (size_t c = 0; c < normed.size(); ++c) normed[c] = res.loglik[c] / static_cast<double>(res.cont_chars[c]);
    res.pred = argmax_first(res.loglik);
    res.pred_norm = argmax_first(normed);
    correct += res.pred == item.label;
    correct_norm += res.pred_norm == item.label;
    if (items) items->push_back(std::move(res));
    if (opts.progress) opts.progress(i + 1, n);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.acc = static_cast<double>(correct) / static_cast<double>(n);
  sum.acc_norm = static_cast<double>(correct_norm) / static_cast<double>(n);
  sum.acc_stderr = stderr_of(sum.acc, n);
  sum.acc_norm_stderr = stderr_of(sum.acc_norm, n);
  return sum;
}

}  // namespace h2o
