// `h2o serve`: the OpenAI-compatible HTTP server over a BatchScheduler.
//
// Each completion request is parsed and checked on its HTTP worker thread (4xx before
// anything is queued), tokenized, and submitted to the scheduler; the scheduler's
// callback pushes events into the request's own queue, which the worker drains while it
// writes the response (SSE chunks, or one JSON object). A write that fails (the client
// went away) cancels the sequence, so its KV cache is freed before the next step; while
// a request waits in the queue the worker probes the connection every
// kProbeInterval with an SSE comment (streams) or a space before the JSON (whole
// responses), so queued requests of departed clients are dropped as well.
//
// Shutdown (SIGTERM/SIGINT in `h2o serve`): begin_drain() refuses new completion requests
// (503) and turns /health to 503; in-flight requests run on for a grace period;
// finish_shutdown() cancels what is left, waits for the workers to write their last
// bytes, and stops the listener so that listen() returns.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kv/kv_config.h"
#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "serve/chat_template.h"
#include "serve/openai_protocol.h"

namespace h2o::serve {

inline constexpr std::chrono::milliseconds kProbeInterval{200};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (bind() returns it)
  std::string api_key;         // empty: no authentication
  SchedulerOptions scheduler;  // threads, --parallel (max_sequences), queue length
  KvSettings kv;               // defaults for requests without kv_* fields
  ProtocolLimits limits;       // model id, max_tokens bound, stop strings, JSON depth
  ChatFormat chat_format = ChatFormat::Plain;
  size_t max_body_bytes = 1 << 20;
  int max_prompt_tokens = 0;  // 0: the model's context length
  int http_threads = 0;       // 0: parallel + queue + 8 (every waiting request holds one)
  int read_timeout_s = 10;    // a client that stalls while sending its request is dropped
  int write_timeout_s = 10;   // ... or while not reading its response
  int keep_alive_timeout_s = 2;
};

class HttpServer {
 public:
  HttpServer(std::shared_ptr<const Model> model, ServerOptions opts);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port. Throws h2o::Error if it cannot.
  int bind();
  // Serves until finish_shutdown() (from another thread). Returns false on a listener error.
  bool listen();

  void begin_drain();
  int in_flight() const;
  // Cancels the requests still running, waits up to `wait` for their workers, stops listening.
  void finish_shutdown(std::chrono::milliseconds wait = std::chrono::seconds(5));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace h2o::serve
