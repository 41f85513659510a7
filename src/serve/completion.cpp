#include "serve/completion.h"

#include <fmt/format.h>

#include <ctime>

#include "serve/chat_template.h"

namespace h2o::serve {
namespace {

double seconds_since(Completion::Clock::time_point t0) {
  return std::chrono::duration<double>(Completion::Clock::now() - t0).count();
}

// Unicode code points in UTF-8 bytes (lead bytes), as OpenAI's text_offset counts.
size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

Completion::Completion(ServerCore& core) : core_(core) {}

Completion::~Completion() { finalize(499); }

std::shared_ptr<Completion> Completion::submit(ServerCore& core, std::string_view body, bool chat, Clock::time_point t0,
                                               Notify notify) {
  const Tokenizer& tok = core.model->tokenizer();
  const int ctx = core.model->config().context_length;
  const ServerOptions& opts = core.opts;
  const CompletionRequest cr = parse_completion_request(body, chat, opts.limits);

  // The prompts' tokens: a chat is rendered by its template (which spells special tokens);
  // text is encoded with the vocabulary's BOS; token ids are used as given.
  std::vector<std::vector<int32_t>> prompts;
  if (chat) {
    prompts.push_back(tok.encode(render_chat(opts.chat_format, cr.messages), EncodeOptions{.parse_special = true}));
  } else {
    for (const PromptInput& p : cr.prompts) prompts.push_back(p.is_tokens ? p.tokens : tok.encode(p.text));
  }
  const char* param = chat ? "messages" : "prompt";

  std::shared_ptr<Completion> c(new Completion(core));
  c->notify_ = std::move(notify);
  c->endpoint_ = chat ? "/v1/chat/completions" : "/v1/completions";
  c->meta_ = ResponseMeta{fmt::format("{}-{:016x}", chat ? "chatcmpl" : "cmpl", core.next_random()),
                          static_cast<int64_t>(std::time(nullptr)), opts.limits.model_id, chat};
  c->stream_ = cr.stream;
  c->include_usage_ = cr.include_usage;
  c->echo_ = cr.echo;
  c->logprobs_ = cr.logprobs;
  c->t0_ = t0;
  c->finalized_ = true;  // nothing to cancel or count until a sequence is accepted

  // Every prompt is checked before any is queued: a bad one refuses the whole request.
  std::vector<SequenceRequest> requests;
  const uint64_t seed = cr.seed.value_or(core.next_random());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string where = prompts.size() > 1 ? fmt::format("{}[{}]", param, i) : std::string(param);
    SequenceRequest sr;
    sr.prompt = std::move(prompts[i]);
    const int n_prompt = static_cast<int>(sr.prompt.size());
    if (n_prompt > core.max_prompt_tokens)
      throw ApiError(400,
                     fmt::format("{}: the prompt is {} tokens; this server accepts at most {}", where, n_prompt,
                                 core.max_prompt_tokens),
                     param, "context_length_exceeded");
    // Without max_tokens: OpenAI's 16 for completions; chat runs to the context end.
    const int room = std::max(ctx - n_prompt, 0);
    sr.max_tokens =
        cr.max_tokens.value_or(chat ? std::min(room, opts.limits.max_tokens_limit) : opts.limits.default_max_tokens);
    sr.ignore_eos = cr.ignore_eos;
    sr.sampling = SamplerParams{cr.temperature, cr.top_k, cr.top_p, seed};
    sr.kv = merge_kv(opts.kv, cr);
    sr.logprobs = cr.logprobs;
    sr.prompt_logprobs = cr.echo && cr.logprobs >= 0;
    // Echo scores the prompt: a percentage budget is a share of it (as in h2o eval), not of
    // the tokens a scoring client asks for after it (lm-eval's local-completions asks one).
    if (cr.echo) sr.budget_base = n_prompt;
    Choice choice(cr.stop);
    try {
      choice.kv = validate_request(*core.model, sr);
    } catch (const Error& e) {
      ApiError a = request_error(e);
      if (a.param().empty())  // the prompt's own problems (a token id outside the vocabulary)
        throw ApiError(400, fmt::format("{}: {}", where, a.what()), param, "invalid_value");
      throw a;
    }
    choice.prompt = sr.prompt;
    choice.prev = sr.prompt.back();
    if (cr.echo) {
      // The prompt as its tokens spell it, so that text_offset indexes this text.
      int32_t prev = -1;
      for (int32_t t : sr.prompt) {
        choice.text_so_far += tok.decode_piece(prev, t);
        prev = t;
      }
      choice.offset = code_points(choice.text_so_far);
    }
    c->prompt_tokens_ += n_prompt;
    c->choices_.push_back(std::move(choice));
    requests.push_back(std::move(sr));
  }

  // The engine holds only a weak reference: a completion whose connection is gone is
  // destroyed (and its sequences cancelled) without waiting for the engine.
  std::weak_ptr<Completion> weak = c;
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      c->choices_[i].id = core.scheduler->submit(std::move(requests[i]), [weak, i](const SequenceEvent& e) {
        if (auto self = weak.lock()) self->push(i, e);
      });
      c->choices_[i].submitted = true;
    } catch (const Error& e) {
      c->cancel_running();  // the prompts already queued go too
      if (dynamic_cast<const BusyError*>(&e)) {
        if (core.draining) throw ApiError(503, e.what(), "", "shutting_down", "server_error");
        throw ApiError(429, e.what(), "", "queue_full", "rate_limit_error");
      }
      throw request_error(e);
    }
  }
  c->finalized_ = false;
  ++core.in_flight;
  return c;
}

void Completion::push(size_t choice, const SequenceEvent& e) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    events_.push_back(Event{choice, e});
    first = !notified_;
    notified_ = true;
  }
  if (first && notify_) notify_();
}

LogprobEntry Completion::entry(Choice& c, int32_t prev, const TokenLogprob& lp) {
  const Tokenizer& tok = core_.model->tokenizer();
  LogprobEntry e;
  e.token = tok.decode_piece(prev, lp.token);
  e.text_offset = c.offset;
  c.offset += code_points(e.token);
  if (lp.scored) e.logprob = lp.logprob;
  for (const auto& [id, value] : lp.top) e.top.emplace_back(tok.decode_piece(prev, id), value);
  return e;
}

std::optional<ResponseJson> Completion::logprobs_json(const std::vector<LogprobEntry>& entries) const {
  if (logprobs_ < 0) return std::nullopt;
  return meta_.chat ? chat_logprobs_json(entries) : completion_logprobs_json(entries);
}

std::string Completion::poll() {
  std::deque<Event> events;
  {
    std::lock_guard lock(mu_);
    events.swap(events_);
    notified_ = false;
  }
  if (done_) return {};  // the end was sent already (or the client is gone)
  const Tokenizer& tok = core_.model->tokenizer();
  std::string payload;
  // Streams send one chunk per token that released text, with the logprobs of the tokens
  // since the last chunk.
  const auto emit = [&](size_t index, std::string text, std::optional<std::string_view> finish) {
    Choice& c = choices_[index];
    if (!stream_) {
      c.text_so_far += text;
      return;
    }
    if (text.empty() && !finish) return;
    std::optional<ResponseJson> lp = logprobs_json(c.lp);
    c.lp.clear();
    ResponseJson chunk = stream_chunk_json(meta_, static_cast<int>(index), text, c.first_chunk, finish, std::move(lp));
    if (finish) chunk["kv"] = kv_json(KvReport{c.kv, c.kv_bytes, c.kv_bytes_peak});  // the choice's own cache
    payload += sse_event(chunk);
    c.first_chunk = false;
  };
  for (const Event& ev : events) {
    if (done_) break;
    Choice& c = choices_[ev.choice];
    if (c.done) continue;
    const SequenceEvent& e = ev.e;
    if (e.kv_bytes_peak > 0) {  // engine events carry the cache's bytes; scheduler-made ones (cancel) do not
      c.kv_bytes = e.kv_bytes;
      c.kv_bytes_peak = std::max(c.kv_bytes_peak, e.kv_bytes_peak);
    }
    if (!e.prompt_logprobs.empty()) {
      // The echoed prompt's entries, from offset 0 of the choice's text.
      c.offset = 0;
      int32_t prev = -1;
      for (const TokenLogprob& lp : e.prompt_logprobs) {
        c.lp.push_back(entry(c, prev, lp));
        prev = lp.token;
      }
    }
    // The end-of-generation token: its logprob, no text (completions list it, as OpenAI's
    // did, so "one entry per sampled token" holds; chat leaves it out).
    if (e.token < 0 && e.logprob && !meta_.chat) c.lp.push_back(entry(c, c.prev, *e.logprob));
    if (e.token >= 0) {
      if (!got_token_) {
        got_token_ = true;
        core_.metrics.observe_ttft(seconds_since(t0_));
      }
      ++c.completion_tokens;
      if (e.logprob) c.lp.push_back(entry(c, c.prev, *e.logprob));
      emit(ev.choice, c.text.push(tok.decode_piece(c.prev, e.token)), std::nullopt);
      c.prev = e.token;
      if (c.text.stopped()) {
        c.finish_reason = "stop";
        c.done = true;
        if (!e.finished) core_.scheduler->cancel(c.id);  // frees the KV cache before the next step
      }
    }
    if (e.finished && !c.done) {
      c.done = true;
      if (e.stop_reason == "cancelled") {
        error_ = "the server is shutting down; the request was cancelled";
        error_status_ = 503;
      } else if (e.stop_reason.rfind("error", 0) == 0) {
        error_ = e.stop_reason;
        error_status_ = 500;
      } else {
        c.finish_reason = finish_reason_for(e.stop_reason);
        emit(ev.choice, c.text.finish(), std::nullopt);
      }
    }
    if (c.done) {
      ++choices_done_;
      if (error_.empty()) emit(ev.choice, "", c.finish_reason);
    }
    if (!error_.empty() || choices_done_ == choices_.size()) done_ = true;
  }
  if (done_ && !error_.empty()) cancel_running();
  if (!stream_ || !done_) return payload;
  if (!error_.empty()) {
    payload += sse_event(error_object());
  } else {
    const KvReport kvr = kv_report();
    if (include_usage_) payload += sse_event(stream_usage_json(meta_, prompt_tokens_, completion_tokens(), kvr));
  }
  payload += kSseDone;
  return payload;
}

int Completion::status() const { return error_.empty() ? 200 : error_status_; }

nlohmann::json Completion::error_object() const {
  return error_json(error_, "server_error", "", error_status_ == 503 ? "shutting_down" : "engine_error");
}

std::string Completion::body() const {
  if (!error_.empty()) return dump_json(error_object());
  std::vector<ChoiceOut> out;
  for (const Choice& c : choices_) out.push_back(ChoiceOut{c.text_so_far, c.finish_reason, logprobs_json(c.lp)});
  return dump_json(completion_json(meta_, out, prompt_tokens_, completion_tokens(), kv_report()));
}

int Completion::completion_tokens() const {
  int n = 0;
  for (const Choice& c : choices_) n += c.completion_tokens;
  return n;
}

KvReport Completion::kv_report() const {
  // One prompt: its sequence's settings and bytes; several: the first one's settings and
  // the bytes of all of them together.
  KvReport r{choices_.front().kv, 0, 0};
  for (const Choice& c : choices_) {
    r.bytes += c.kv_bytes;
    r.bytes_peak += c.kv_bytes_peak;
  }
  return r;
}

void Completion::cancel_running() {
  for (Choice& c : choices_) {
    if (c.submitted && !c.done) core_.scheduler->cancel(c.id);
    c.done = true;
  }
}

void Completion::finish() { finalize(status()); }

void Completion::client_gone() {
  cancel_running();
  done_ = true;
  finalize(499);
}

void Completion::finalize(int status) {
  if (finalized_) return;
  finalized_ = true;
  cancel_running();
  core_.metrics.count_request(endpoint_, status);
  core_.metrics.observe_latency(seconds_since(t0_));
  core_.metrics.add_tokens(prompt_tokens_, completion_tokens());
  --core_.in_flight;
}

}  // namespace h2o::serve
