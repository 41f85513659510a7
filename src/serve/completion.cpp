#include "serve/completion.h"

#include <fmt/format.h>

#include <ctime>

#include "serve/chat_template.h"

namespace h2o::serve {
namespace {

double seconds_since(Completion::Clock::time_point t0) {
  return std::chrono::duration<double>(Completion::Clock::now() - t0).count();
}

}  // namespace

Completion::Completion(ServerCore& core, std::vector<std::string> stops) : core_(core), text_(std::move(stops)) {}

Completion::~Completion() { finalize(499); }

std::shared_ptr<Completion> Completion::submit(ServerCore& core, std::string_view body, bool chat, Clock::time_point t0,
                                               Notify notify) {
  const Tokenizer& tok = core.model->tokenizer();
  const int ctx = core.model->config().context_length;
  const ServerOptions& opts = core.opts;
  const CompletionRequest cr = parse_completion_request(body, chat, opts.limits);
  const std::string prompt = chat ? render_chat(opts.chat_format, cr.messages) : cr.prompt;
  SequenceRequest sr;
  sr.prompt = tok.encode(prompt, EncodeOptions{.parse_special = chat});  // templates spell special tokens
  const int n_prompt = static_cast<int>(sr.prompt.size());
  if (n_prompt > core.max_prompt_tokens)
    throw ApiError(
        400, fmt::format("the prompt is {} tokens; this server accepts at most {}", n_prompt, core.max_prompt_tokens),
        chat ? "messages" : "prompt", "context_length_exceeded");
  // Without max_tokens: OpenAI's 16 for completions; chat runs to the context end.
  const int room = std::max(ctx - n_prompt, 0);
  sr.max_tokens =
      cr.max_tokens.value_or(chat ? std::min(room, opts.limits.max_tokens_limit) : opts.limits.default_max_tokens);
  sr.ignore_eos = cr.ignore_eos;
  sr.sampling = SamplerParams{cr.temperature, cr.top_k, cr.top_p, cr.seed.value_or(core.next_random())};
  sr.kv = merge_kv(opts.kv, cr);
  KvResolved kv;
  try {
    sr.sampling.validate();
    kv = resolve_kv(sr.kv, std::min(ctx, n_prompt + sr.max_tokens));
  } catch (const Error& e) {
    throw request_error(e);
  }

  std::shared_ptr<Completion> c(new Completion(core, cr.stop));
  c->notify_ = std::move(notify);
  c->endpoint_ = chat ? "/v1/chat/completions" : "/v1/completions";
  c->meta_ = ResponseMeta{fmt::format("{}-{:016x}", chat ? "chatcmpl" : "cmpl", core.next_random()),
                          static_cast<int64_t>(std::time(nullptr)), opts.limits.model_id, chat};
  c->stream_ = cr.stream;
  c->include_usage_ = cr.include_usage;
  c->prompt_tokens_ = n_prompt;
  c->kv_ = kv;
  c->prev_ = sr.prompt.back();
  c->t0_ = t0;
  // The engine holds only a weak reference: a completion whose connection is gone is
  // destroyed (and its sequence cancelled) without waiting for the engine.
  std::weak_ptr<Completion> weak = c;
  try {
    c->id_ = core.scheduler->submit(std::move(sr), [weak](const SequenceEvent& e) {
      if (auto self = weak.lock()) self->push(e);
    });
  } catch (const BusyError& e) {
    c->finalized_ = true;  // never accepted: nothing to cancel or count here
    if (core.draining) throw ApiError(503, e.what(), "", "shutting_down", "server_error");
    throw ApiError(429, e.what(), "", "queue_full", "rate_limit_error");
  } catch (const Error& e) {
    c->finalized_ = true;
    throw request_error(e);
  }
  ++core.in_flight;
  return c;
}

void Completion::push(const SequenceEvent& e) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    events_.push_back(e);
    first = !notified_;
    notified_ = true;
  }
  if (first && notify_) notify_();
}

std::string Completion::poll() {
  std::deque<SequenceEvent> events;
  {
    std::lock_guard lock(mu_);
    events.swap(events_);
    notified_ = false;
  }
  if (done_) return {};             // the end was sent already (or the client is gone)
  std::vector<std::string> pieces;  // streams send one chunk per token that released text
  const auto emit = [&](std::string t) {
    if (t.empty()) return;
    if (stream_) {
      pieces.push_back(std::move(t));
    } else {
      text_so_far_ += t;
    }
  };
  for (const SequenceEvent& e : events) {
    if (done_) break;
    if (e.kv_bytes_peak > 0) {  // engine events carry the cache's bytes; scheduler-made ones (cancel) do not
      kv_bytes_ = e.kv_bytes;
      kv_bytes_peak_ = std::max(kv_bytes_peak_, e.kv_bytes_peak);
    }
    if (e.token >= 0) {
      if (!got_token_) {
        got_token_ = true;
        core_.metrics.observe_ttft(seconds_since(t0_));
      }
      ++completion_tokens_;
      emit(text_.push(core_.model->tokenizer().decode_piece(prev_, e.token)));
      prev_ = e.token;
      if (text_.stopped()) {
        finish_reason_ = "stop";
        done_ = true;
        if (!e.finished) core_.scheduler->cancel(id_);  // frees the KV cache before the next step
        break;
      }
    }
    if (e.finished) {
      done_ = true;
      if (e.stop_reason == "cancelled") {
        error_ = "the server is shutting down; the request was cancelled";
        error_status_ = 503;
      } else if (e.stop_reason.rfind("error", 0) == 0) {
        error_ = e.stop_reason;
        error_status_ = 500;
      } else {
        finish_reason_ = finish_reason_for(e.stop_reason);
        emit(text_.finish());
      }
    }
  }
  if (!stream_) return {};
  std::string payload;
  for (const std::string& piece : pieces) {
    payload += sse_event(stream_chunk_json(meta_, piece, first_chunk_, std::nullopt));
    first_chunk_ = false;
  }
  if (done_) {
    if (!error_.empty()) {
      payload += sse_event(error_object());
    } else {
      const KvReport kvr = kv_report();
      nlohmann::json last = stream_chunk_json(meta_, "", first_chunk_, finish_reason_);
      last["kv"] = kv_json(kvr);
      payload += sse_event(last);
      if (include_usage_) payload += sse_event(stream_usage_json(meta_, prompt_tokens_, completion_tokens_, kvr));
    }
    payload += kSseDone;
  }
  return payload;
}

int Completion::status() const { return error_.empty() ? 200 : error_status_; }

nlohmann::json Completion::error_object() const {
  return error_json(error_, "server_error", "", error_status_ == 503 ? "shutting_down" : "engine_error");
}

std::string Completion::body() const {
  if (!error_.empty()) return dump_json(error_object());
  return dump_json(
      completion_json(meta_, text_so_far_, finish_reason_, prompt_tokens_, completion_tokens_, kv_report()));
}

KvReport Completion::kv_report() const { return KvReport{kv_, kv_bytes_, kv_bytes_peak_}; }

void Completion::finish() { finalize(status()); }

void Completion::client_gone() {
  if (!done_) core_.scheduler->cancel(id_);
  done_ = true;
  finalize(499);
}

void Completion::finalize(int status) {
  if (finalized_) return;
  finalized_ = true;
  if (!done_) core_.scheduler->cancel(id_);
  core_.metrics.count_request(endpoint_, status);
  core_.metrics.observe_latency(seconds_since(t0_));
  core_.metrics.add_tokens(prompt_tokens_, completion_tokens_);
  --core_.in_flight;
}

}  // namespace h2o::serve
