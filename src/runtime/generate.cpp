#include "runtime/generate.h"

#include <chrono>

#include "common/check.h"

namespace h2o {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateResult generate(const std::shared_ptr<const Model>& model, const GenerateOptions& opts,
                        const std::function<void(std::string_view)>& on_text) {
  if (opts.n_predict < 0) fail("-n: must be >= 0, got {}", opts.n_predict);
  opts.sampling.validate();
  const Tokenizer& tok = model->tokenizer();
  const int ctx = model->config().context_length;
  GenerateResult res;
  res.prompt_tokens = tok.encode(opts.prompt);  // with the BOS the vocabulary adds, if any
  if (res.prompt_tokens.empty())
    fail("the prompt is empty and the vocabulary adds no BOS token: nothing to start from");
  const int n_prompt = static_cast<int>(res.prompt_tokens.size());
  if (n_prompt > ctx) fail("prompt is {} tokens, longer than the model's context length {}", n_prompt, ctx);

  SessionOptions so = opts.session;
  so.expected_length = std::min(ctx, n_prompt + opts.n_predict);
  Session session(model, so);
  res.kv = session.kv();
  Sampler sampler(opts.sampling);

  res.prompt_text = tok.decode(res.prompt_tokens);
  if (on_text) on_text(res.prompt_text);

  const auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = session.feed(res.prompt_tokens);
  res.prefill_seconds = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  int32_t prev = res.prompt_tokens.back();
  res.stop_reason = "length";
  for (int i = 0; i < opts.n_predict; ++i) {
    const int32_t next = sampler.sample(logits);
    if (!opts.ignore_eos && tok.is_end_of_generation(next)) {
      res.stop_reason = "eos";
      break;
    }
    res.tokens.push_back(next);
    const std::string piece = tok.decode_piece(prev, next);
    res.text += piece;
    if (on_text) on_text(piece);
    prev = next;
    if (i + 1 == opts.n_predict) break;  // no forward pass for a token nobody will sample from
    if (session.n_past() >= ctx && !streams_past_context(session.kv())) {
      res.stop_reason = "context";
      break;
    }
    logits = session.feed(std::span(&next, 1));
    res.kv_bytes_trace.push_back(session.kv_bytes());
  }
  res.decode_seconds = seconds_since(t1);
  res.kv_bytes = session.kv_bytes();
  res.kv_bytes_peak = session.kv_bytes_peak();
  return res;
}

}  // namespace h2o
