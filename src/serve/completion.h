// One completion request inside `h2o serve`, independent of the transport: the body is
// parsed, checked, tokenized and submitted to the scheduler (ApiError before anything is
// queued); the engine's events, pushed from its thread, become response bytes (SSE events
// for streams; one JSON object, with its status, for whole responses) when the connection
// polls. The connection calls poll() after each notify() and writes what it returns.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
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
  // Not finished: the sequence is cancelled and the request counted as 499.
  ~Completion();
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  bool stream() const { return stream_; }
  // Takes the events that arrived. Streams: returns the SSE bytes to send now (the call
  // that reaches done() includes the last chunk, usage and [DONE]). Whole responses:
  // returns "" (the text accumulates until done()).
  std::string poll();
  bool done() const { return done_; }
  // Once done(): the HTTP status and JSON body of a whole response (200, or 503 when the
  // server cancelled it at shutdown, 500 on an engine error).
  int status() const;
  std::string body() const;
  // The connection wrote the last byte: records the outcome in the metrics.
  void finish();
  // The client went away: cancels the sequence (its KV cache is freed before the next
  // step) and counts the request as 499.
  void client_gone();

 private:
  Completion(ServerCore& core, std::vector<std::string> stops);
  void push(const SequenceEvent& e);  // engine thread
  void finalize(int status);
  KvReport kv_report() const;
  nlohmann::json error_object() const;

  ServerCore& core_;
  Notify notify_;
  std::string endpoint_;
  ResponseMeta meta_;
  bool stream_ = false, include_usage_ = false;
  uint64_t id_ = 0;
  int prompt_tokens_ = 0;
  KvResolved kv_;
  Clock::time_point t0_;

  std::mutex mu_;  // events_ and notified_, shared with the engine thread
  std::deque<SequenceEvent> events_;
  bool notified_ = false;

  // Touched by the connection only (one poll at a time).
  TextStream text_;
  int32_t prev_ = -1;
  size_t kv_bytes_ = 0, kv_bytes_peak_ = 0;
  int completion_tokens_ = 0;
  bool got_token_ = false, done_ = false, first_chunk_ = true, finalized_ = false;
  std::string finish_reason_;  // stop | length
  std::string error_;          // the sequence ended without finishing (shutdown, engine error)
  int error_status_ = 0;
  std::string text_so_far_;  // whole responses
};

}  // namespace h2o::serve
