// `h2o serve`: the OpenAI-compatible HTTP server over a BatchScheduler.
//
// The HTTP layer is Boost.Beast on one Asio event loop (docs/architecture.md says why):
// every connection is a state machine with deadlines (serve/http_session.h), request
// bodies are parsed and tokenized on a small fixed pool, and the engine thread posts its
// events back to the connections. No thread is tied to a connection or a queued request,
// so slow or flooding clients cost memory that the limits bound (server_options.h), and
// the loop keeps answering /health.
//
// Shutdown (SIGTERM/SIGINT in `h2o serve`): begin_drain() refuses new completion requests
// (503) and turns /health to 503; in-flight requests run on for a grace period;
// finish_shutdown() cancels what is left (streams end with an error event, whole responses
// are answered 503), waits for their last bytes, and stops the loop so that listen()
// returns.
#pragma once

#include <chrono>
#include <memory>

#include "model/model.h"
#include "serve/server_options.h"

namespace h2o::serve {

class HttpServer {
 public:
  // Validates `opts` (throws h2o::Error naming the flag) and starts the engine thread.
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
  // Cancels the requests still running, waits up to `wait` for their last bytes, stops.
  void finish_shutdown(std::chrono::milliseconds wait = std::chrono::seconds(5));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace h2o::serve
