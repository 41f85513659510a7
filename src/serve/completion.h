// One completion request inside `h2o serve`, independent of the transport: the body is
// parsed, checked, tokenized and submitted to the scheduler, one sequence per prompt
// (ApiError before anything is queued); the engine's events, pushed from its thread,
// become response bytes (SSE events for streams; one JSON object, with its status, for
// whole responses) when the connection polls. The connection calls poll() after each
// notify() and writes what it returns.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "serve/openai_protocol.h"
#include "serve/server_core.h"
#include "serve/text_stream.h"

namespace h2o::serve {

class Completion {
 public:
  using Clock = std::chrono::steady_clock;
  // Called on the engine thread when events arrive for a completion with none pending;
  // must return quickly (post to the connection's executor).
  using Notify = std::function<void()>;

  // Parses `body` (an /v1/completions or /v1/chat/completions request), tokenizes and
  // submits it. Throws ApiError: 400/404 for the request, 429 (queue full), 503 (draining).
  static std::shared_ptr<Completion> submit(ServerCore& core, std::string_view body, bool chat, Clock::time_point t0,
                                            Notify notify);
  // Not finished: the sequences are cancelled and the request counted as 499.
  ~Completion();
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  bool stream() const { return stream_; }
  // Takes the events that arrived. Streams: returns the SSE bytes to send now (the call
  // that reaches done() includes the last chunks, usage and [DONE]). Whole responses:
  // returns "" (the text accumulates until done()).
  std::string poll();
  bool done() const { return done_; }
  // Once done(): the HTTP status and JSON body of a whole response (200, or 503 when the
  // server cancelled it at shutdown, 500 on an engine error).
  int status() const;
  std::string body() const;
  // The connection wrote the last byte: records the outcome in the metrics.
  void finish();
  // The client went away: cancels the sequences (their KV caches are freed before the next
  // step) and counts the request as 499.
  void client_gone();

 private:
  // One prompt's sequence: its text and logprobs as they are produced.
  struct Choice {
    explicit Choice(std::vector<std::string> stops) : text(std::move(stops)) {}
    uint64_t id = 0;  // the scheduler's request id
    std::vector<int32_t> prompt;
    KvResolved kv;
    TextStream text;
    int32_t prev = -1;  // the token before the next one (for its piece)
    size_t offset = 0;  // code points in the choice's text so far (logprobs' text_offset)
    size_t kv_bytes = 0, kv_bytes_peak = 0;
    int completion_tokens = 0;
    bool submitted = false, done = false, first_chunk = true;
    std::string finish_reason;     // stop | length
    std::string text_so_far;       // whole responses (echo: the prompt first)
    std::vector<LogprobEntry> lp;  // whole responses: all; streams: not yet sent
  };
  struct Event {
    size_t choice;
    SequenceEvent e;
  };

  explicit Completion(ServerCore& core);
  void push(size_t choice, const SequenceEvent& e);  // engine thread
  // The logprob entry of `token` (its piece after `prev`, alternatives decoded after `prev`).
  LogprobEntry entry(Choice& c, int32_t prev, const TokenLogprob& lp);
  void cancel_running();
  void finalize(int status);
  KvReport kv_report() const;
  int completion_tokens() const;  // over all choices
  nlohmann::json error_object() const;
  std::optional<ResponseJson> logprobs_json(const std::vector<LogprobEntry>& entries) const;

  ServerCore& core_;
  Notify notify_;
  std::string endpoint_;
  ResponseMeta meta_;
  bool stream_ = false, include_usage_ = false, echo_ = false;
  int logprobs_ = -1;
  int prompt_tokens_ = 0;
  Clock::time_point t0_;
  std::vector<Choice> choices_;

  std::mutex mu_;  // events_ and notified_, shared with the engine thread
  std::deque<Event> events_;
  bool notified_ = false;

  // Touched by the connection only (one poll at a time).
  bool got_token_ = false, done_ = false, finalized_ = false;
  size_t choices_done_ = 0;
  std::string error_;  // a sequence ended without finishing (shutdown, engine error)
  int error_status_ = 0;
};

}  // namespace h2o::serve
