#include "runtime/batch_engine.h"

#include <algorithm>

#include "common/check.h"
#include "kv/kv_cache.h"

namespace h2o {

struct BatchEngine::Sequence {
  uint64_t id = 0;
  SequenceRequest req;
  std::unique_ptr<KvCache> cache;
  Sampler sampler;
  size_t fed = 0;     // prompt tokens already in the cache
  int n_past = 0;     // tokens in the sequence so far (prompt fed + generated fed)
  int generated = 0;  // tokens sampled
  int32_t next = -1;  // the sampled token to feed in the next step (-1: still prefilling)
  bool done = false;  // finished in this step: removed at its end
  // This step's rows.
  std::vector<int32_t> step_tokens, step_pos;
  bool wants_logits = false;
  bool all_rows = false;                // this step's logits for every row (prompt logprobs)
  std::vector<TokenLogprob> prompt_lp;  // accumulated over the prefill chunks

  int chunk = 0;  // prompt tokens per step

  // `chunk`: the prompt tokens per step (the request's prefill chunk; see step_chunk()).
  Sequence(uint64_t id_, SequenceRequest r, const KvResolved& resolved, const ModelConfig& cfg, int chunk_)
      : id(id_),
        req(std::move(r)),
        cache(std::make_unique<KvCache>(cfg.attention_shape(), resolved, chunk_)),
        sampler(req.sampling),
        chunk(chunk_) {}
  bool prefilling() const { return fed < req.prompt.size(); }
};

namespace {

// Prompt tokens per step for a request: its prefill chunk; with none (whole prompt), a
// `full` cache takes the engine's step limit instead, so a long prompt shares steps with
// the decoding sequences. That changes nothing in its results (full attention sees the
// same slots in the same order however the prompt is split); a bounded policy's step
// boundaries are part of its semantics, so its whole prompt stays one step.
int step_chunk(const SequenceRequest& req, const KvResolved& kv, int max_step_tokens) {
  const int n = static_cast<int>(req.prompt.size());
  if (req.kv.prefill_chunk > 0) return std::min(req.kv.prefill_chunk, n);
  return kv.budget == 0 ? std::min(max_step_tokens, n) : n;
}

int expected_length(const ModelConfig& cfg, const SequenceRequest& req) {
  const int64_t n = req.budget_base > 0 ? req.budget_base : static_cast<int64_t>(req.prompt.size()) + req.max_tokens;
  return static_cast<int>(std::min<int64_t>(cfg.context_length, n));
}

}  // namespace

KvResolved validate_request(const Model& model, const SequenceRequest& req) {
  const ModelConfig& c = model.config();
  if (req.prompt.empty()) fail("prompt is empty");
  if (req.prompt.size() > static_cast<size_t>(c.context_length))
    fail("prompt is {} tokens, longer than the model's context length {}", req.prompt.size(), c.context_length);
  for (int32_t t : req.prompt) {
    if (t < 0 || t >= c.vocab_size) fail("prompt token id {} is outside the vocabulary (size {})", t, c.vocab_size);
  }
  if (req.max_tokens < 0) fail("max_tokens: must be >= 0, got {}", req.max_tokens);
  if (req.logprobs < -1 || req.logprobs > kMaxTopLogprobs)
    fail("logprobs: must be in [0, {}], got {}", kMaxTopLogprobs, req.logprobs);
  req.sampling.validate();
  if (req.kv.prefill_chunk < 0) fail("prefill chunk: must be >= 1, got {}", req.kv.prefill_chunk);
  const KvResolved kv = resolve_kv(req.kv, expected_length(c, req));
  check_kv_positions(kv, model.rope().enabled(), c.arch);
  return kv;
}

BatchEngine::BatchEngine(std::shared_ptr<const Model> model, const BatchOptions& opts)
    : model_(std::move(model)), opts_(opts), forward_(*model_) {
  if (opts_.threads < 1) fail("threads: must be >= 1, got {}", opts_.threads);
  if (opts_.max_sequences < 1) fail("max sequences: must be >= 1, got {}", opts_.max_sequences);
  if (opts_.max_step_tokens < 1) fail("max step tokens: must be >= 1, got {}", opts_.max_step_tokens);
  pool_ = std::make_unique<ThreadPool>(opts_.threads, opts_.min_parallel_work);
}

BatchEngine::~BatchEngine() = default;

uint64_t BatchEngine::add(SequenceRequest req) {
  if (full()) throw BusyError(fmt::format("all {} sequence slots are in use", opts_.max_sequences));
  const KvResolved kv = validate_request(*model_, req);
  const ModelConfig& c = model_->config();
  const uint64_t id = next_id_++;
  const int chunk = step_chunk(req, kv, opts_.max_step_tokens);
  seqs_.push_back(std::make_unique<Sequence>(id, std::move(req), kv, c, chunk));
  return id;
}

void BatchEngine::cancel(uint64_t id) {
  std::erase_if(seqs_, [id](const std::unique_ptr<Sequence>& s) { return s->id == id; });
}

BatchEngine::Sequence* BatchEngine::find(uint64_t id) const {
  for (const auto& s : seqs_) {
    if (s->id == id) return s.get();
  }
  return nullptr;
}

size_t BatchEngine::kv_bytes(uint64_t id) const {
  const Sequence* s = find(id);
  return s ? s->cache->bytes() : 0;
}

size_t BatchEngine::kv_bytes_peak(uint64_t id) const {
  const Sequence* s = find(id);
  return s ? s->cache->peak_bytes() : 0;
}

KvResolved BatchEngine::kv_settings(uint64_t id) const {
  const Sequence* s = find(id);
  if (!s) fail("no sequence with id {}", id);
  return s->cache->settings();
}

BatchStats BatchEngine::stats() const {
  BatchStats st;
  st.sequences = static_cast<int>(seqs_.size());
  for (const auto& s : seqs_) {
    if (!s->prefilling()) ++st.decoding;
    st.kv_bytes += s->cache->bytes();
  }
  st.kv_bytes_in_step = kv_bytes_in_step_;
  st.steps = steps_;
  st.prompt_tokens = prompt_tokens_;
  st.generated_tokens = generated_tokens_;
  return st;
}

std::vector<SequenceEvent> BatchEngine::step() {
  std::vector<SequenceEvent> events;
  const ModelConfig& c = model_->config();
  const size_t V = static_cast<size_t>(c.vocab_size);

  // Sequences that asked for no tokens finish as soon as their prompt is in (like generate).
  // Pick this step's rows: every decoding sequence's next token, then whole prefill chunks
  // in arrival order while they fit the step's prefill token limit (at least one chunk).
  std::vector<Sequence*> rows;
  int prefill_tokens = 0;
  for (const auto& sp : seqs_) {
    Sequence& s = *sp;
    s.step_tokens.clear();
    s.step_pos.clear();
    s.wants_logits = false;
    s.all_rows = false;
    if (!s.prefilling()) {
      s.step_tokens.push_back(s.next);
      s.step_pos.push_back(s.n_past);
      s.wants_logits = true;
      rows.push_back(&s);
    }
  }
  for (const auto& sp : seqs_) {
    Sequence& s = *sp;
    if (!s.prefilling()) continue;
    const size_t left = s.req.prompt.size() - s.fed;
    const size_t chunk = std::min<size_t>(left, static_cast<size_t>(s.chunk));
    if (prefill_tokens > 0 && prefill_tokens + static_cast<int>(chunk) > opts_.max_step_tokens) continue;
    for (size_t t = 0; t < chunk; ++t) {
      s.step_tokens.push_back(s.req.prompt[s.fed + t]);
      s.step_pos.push_back(s.n_past + static_cast<int>(t));
    }
    s.wants_logits = chunk == left || s.req.prompt_logprobs;
    s.all_rows = s.req.prompt_logprobs;
    prefill_tokens += static_cast<int>(chunk);
    rows.push_back(&s);
  }
  if (rows.empty()) return events;
  // A sequence between chunks of its prompt that does not prefill in this step (its chunk
  // did not fit the step's limit) gives its chunk slots back until it does.
  for (const auto& sp : seqs_) {
    if (sp->prefilling() && sp->step_tokens.empty()) sp->cache->shrink_to_step(1);
  }

  size_t n_logits = 0;
  for (Sequence* s : rows) n_logits += !s->wants_logits ? 0 : s->all_rows ? s->step_tokens.size() : 1;
  logits_.resize(n_logits * V);
  std::vector<StepSegment> segments;
  segments.reserve(rows.size());
  for (size_t i = 0, li = 0; i < rows.size(); ++i) {
    Sequence& s = *rows[i];
    const int n = static_cast<int>(s.step_tokens.size());
    float* logits = s.wants_logits ? &logits_[li * V] : nullptr;
    li += !s.wants_logits ? 0 : s.all_rows ? static_cast<size_t>(n) : 1;
    segments.push_back(StepSegment{s.step_tokens.data(), s.step_pos.data(), n, s.cache.get(),
                                   s.n_past + static_cast<int64_t>(n), s.all_rows, logits});
  }
  forward_.step_batch(segments, *pool_);
  ++steps_;
  kv_bytes_in_step_ = 0;
  for (const auto& sp : seqs_) kv_bytes_in_step_ += sp->cache->bytes();

  // Advance every sequence in the step, then sample where a prompt is done or a token was fed.
  const Tokenizer& tok = model_->tokenizer();
  const auto make_event = [](const Sequence& s, int32_t token, bool finished, const std::string& reason) {
    SequenceEvent e = SequenceEvent::end(s.id, reason);
    e.token = token;
    e.finished = finished;
    e.n_prompt = static_cast<int>(s.req.prompt.size());
    e.n_generated = s.generated;
    e.kv_bytes = s.cache->bytes();
    e.kv_bytes_peak = s.cache->peak_bytes();
    return e;
  };
  // The sequence's first event carries its prompt's logprobs.
  const auto event = [&make_event](Sequence& s, int32_t token, bool finished, const std::string& reason) {
    SequenceEvent e = make_event(s, token, finished, reason);
    if (!s.prompt_lp.empty()) e.prompt_logprobs = std::move(s.prompt_lp);
    s.prompt_lp.clear();
    return e;
  };
  // The next tokens, sampled on the pool's threads (22 rows of a 32k vocabulary are
  // milliseconds per step): each sequence's sampler owns its state, so the draws are the
  // same whichever thread makes them. Rows whose prompt is still incomplete, or that may
  // not generate, are not sampled.
  const auto samples_from = [&](size_t i) {
    const Sequence& s = *rows[i];
    const size_t n = s.step_tokens.size();
    const bool completes = !s.prefilling() || s.fed + n == s.req.prompt.size();
    return segments[i].logits && completes && s.req.max_tokens != 0;
  };
  // The row the next token is sampled from: the step's last.
  const auto last_row = [&](size_t i) {
    const Sequence& s = *rows[i];
    const size_t n = s.step_tokens.size();
    return std::span<const float>(segments[i].logits + (s.all_rows ? (n - 1) * V : 0), V);
  };
  sampled_.assign(rows.size(), -1);
  pool_->parallel_claim(
      rows.size(),
      [&](size_t i, size_t) {
        if (samples_from(i)) sampled_[i] = rows[i]->sampler.sample(last_row(i));
      },
      rows.size() * V * 2);
  for (size_t i = 0; i < rows.size(); ++i) {
    Sequence& s = *rows[i];
    const int n = static_cast<int>(s.step_tokens.size());
    const bool was_prefill = s.prefilling();
    if (was_prefill && s.all_rows) {
      // Row t predicts prompt token fed + t + 1; the first prompt token is predicted by nothing.
      if (s.fed == 0) s.prompt_lp.push_back(TokenLogprob{s.req.prompt[0], false, 0.0, {}});
      for (int t = 0; t < n; ++t) {
        const size_t next_index = s.fed + static_cast<size_t>(t) + 1;
        if (next_index >= s.req.prompt.size()) break;
        s.prompt_lp.push_back(token_logprob(std::span<const float>(segments[i].logits + static_cast<size_t>(t) * V, V),
                                            s.req.prompt[next_index], std::max(s.req.logprobs, 0)));
      }
    }
    if (was_prefill) {
      s.fed += static_cast<size_t>(n);
      prompt_tokens_ += static_cast<uint64_t>(n);
    }
    s.n_past += n;
    // A bounded cache holds chunk slots only while its prompt is being fed: back to B + 1
    // slots after its last chunk, so the chunk scratch is held by the sequences prefilling
    // in a step (see KvPlan in bench/throughput.h). Between its chunks it keeps them: it
    // prefills again in the next step (or gives them back first, above), and shrinking and
    // regrowing every layer's arrays per chunk (fresh pages zeroed and copied) was ~2% of a
    // prompt-heavy batched run's samples.
    if (was_prefill && !s.prefilling()) s.cache->shrink_to_step(1);
    if (!segments[i].logits || s.prefilling()) continue;
    const std::span<const float> last = last_row(i);
    if (s.req.max_tokens == 0) {
      s.done = true;
      events.push_back(event(s, -1, true, "length"));
      continue;
    }
    const int32_t next = sampled_[i];
    if (next < 0) fail("internal: sequence {} was not sampled", s.id);
    if (!s.req.ignore_eos && tok.is_end_of_generation(next)) {
      s.done = true;
      SequenceEvent e = event(s, -1, true, "eos");
      // The end token's logprob is reported too (scoring clients count on one entry per
      // token sampled, the last included), though it adds no text.
      if (s.req.logprobs >= 0) e.logprob = token_logprob(last, next, s.req.logprobs);
      events.push_back(std::move(e));
      continue;
    }
    ++s.generated;
    ++generated_tokens_;
    s.next = next;
    SequenceEvent e = event(s, next, false, {});
    if (s.req.logprobs >= 0) e.logprob = token_logprob(last, next, s.req.logprobs);
    if (s.generated >= s.req.max_tokens) {
      e.finished = true;
      e.stop_reason = "length";
    } else if (s.n_past >= c.context_length && !streams_past_context(s.cache->settings())) {
      e.finished = true;
      e.stop_reason = "context";
    }
    s.done = e.finished;
    events.push_back(std::move(e));
  }
  std::erase_if(seqs_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
  return events;
}

}  // namespace h2o
