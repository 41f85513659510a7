#include "serve/http_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/check.h"
#include "serve/metrics.h"
#include "serve/text_stream.h"

namespace h2o::serve {
namespace {

using Clock = std::chrono::steady_clock;
using httplib::DataSink;
using httplib::Request;
using httplib::Response;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Events of one request, filled by the scheduler's callback on the engine thread and
// drained by the request's HTTP worker.
struct EventQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<SequenceEvent> events;

  void push(const SequenceEvent& e) {
    {
      std::lock_guard lock(mu);
      events.push_back(e);
    }
    cv.notify_one();
  }
  // Everything queued, waiting up to `wait` for the first event.
  std::deque<SequenceEvent> take(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, wait, [this] { return !events.empty(); });
    return std::exchange(events, {});
  }
};

// "application/json" responses may be gzip-compressed by httplib; with the charset
// parameter they are not, so the probe spaces of a waiting response really reach the socket.
constexpr const char* kJsonStreamType = "application/json; charset=utf-8";

// Metrics label for a path: the routes this server has, everything else "other" (paths
// come from clients and must not create unbounded label sets).
std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"}) {
    if (path == known) return known;
  }
  return "other";
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<const Model> model;
  ServerOptions opts;
  std::unique_ptr<BatchScheduler> scheduler;
  httplib::Server http;
  Metrics metrics;
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};
  std::atomic<uint64_t> counter{0};
  uint64_t seed_base = 0;
  int max_prompt_tokens = 0;
  socket_t listen_socket = INVALID_SOCKET;

  struct Generation;

  Impl(std::shared_ptr<const Model> m, ServerOptions o);
  void routes();
  bool authorized(const Request& req, Response& res);
  void reply_error(Response& res, const std::string& endpoint, const ApiError& e);
  void reply_json(Response& res, const std::string& endpoint, const nlohmann::json& j, int status = 200);
  void handle_completion(const Request& req, Response& res, bool chat);
  uint64_t next_random() { return splitmix64(seed_base + counter.fetch_add(1)); }
};

// One accepted completion request, from submission to its last byte. Owned by the
// response's content provider and releaser (shared_ptr); the worker thread is the only
// one that touches it.
struct HttpServer::Impl::Generation {
  Impl& srv;
  std::string endpoint;
  ResponseMeta meta;
  bool stream = false, include_usage = false;
  std::shared_ptr<EventQueue> queue;
  uint64_t id = 0;
  int prompt_tokens = 0;
  KvResolved kv;
  size_t kv_bytes = 0, kv_bytes_peak = 0;  // from the last engine event
  TextStream text;
  int32_t prev = -1;
  Clock::time_point t0;

  int completion_tokens = 0;
  bool got_token = false, done = false, first_chunk = true, finalized = false;
  std::string finish_reason;  // stop | length
  std::string error;          // set when the sequence ended without finishing (shutdown, engine error)
  int error_status = 0;
  std::string body_text;  // whole responses: the text so far
  Clock::time_point last_write;

  Generation(Impl& s, std::vector<std::string> stops) : srv(s), text(std::move(stops)) { ++srv.in_flight; }
  ~Generation() { finalize(499); }

  // Turns the events that arrive within `wait` into sendable text, appended to `out`, or
  // with `pieces` one entry per token that released text (streams send a chunk per
  // token, however many arrived since the last write). Returns whether any event came.
  bool poll(std::chrono::milliseconds wait, std::string& out, std::vector<std::string>* pieces = nullptr) {
    const auto emit = [&](std::string t) {
      if (t.empty()) return;
      if (pieces) {
        pieces->push_back(std::move(t));
      } else {
        out += t;
      }
    };
    std::deque<SequenceEvent> events = queue->take(wait);
    for (const SequenceEvent& e : events) {
      if (done) break;
      if (e.kv_bytes_peak > 0) {  // engine events carry the cache's bytes; scheduler-made ones (cancel) do not
        kv_bytes = e.kv_bytes;
        kv_bytes_peak = std::max(kv_bytes_peak, e.kv_bytes_peak);
      }
      if (e.token >= 0) {
        if (!got_token) {
          got_token = true;
          srv.metrics.observe_ttft(seconds_since(t0));
        }
        ++completion_tokens;
        emit(text.push(srv.model->tokenizer().decode_piece(prev, e.token)));
        prev = e.token;
        if (text.stopped()) {
          finish_reason = "stop";
          done = true;
          if (!e.finished) srv.scheduler->cancel(id);  // frees the KV cache before the next step
          break;
        }
      }
      if (e.finished) {
        done = true;
        if (e.stop_reason == "cancelled") {
          error = "the server is shutting down; the request was cancelled";
          error_status = 503;
        } else if (e.stop_reason.rfind("error", 0) == 0) {
          error = e.stop_reason;
          error_status = 500;
        } else {
          finish_reason = finish_reason_for(e.stop_reason);
          emit(text.finish());
        }
      }
    }
    return !events.empty();
  }

  KvReport kv_report() const { return KvReport{kv, kv_bytes, kv_bytes_peak}; }

  // The client is gone (a write failed): cancel the sequence now.
  bool client_gone() {
    if (!done) srv.scheduler->cancel(id);
    done = true;
    finalize(499);
    return false;
  }

  void finalize(int status) {
    if (finalized) return;
    finalized = true;
    if (!done) srv.scheduler->cancel(id);
    srv.metrics.count_request(endpoint, status);
    srv.metrics.observe_latency(seconds_since(t0));
    srv.metrics.add_tokens(prompt_tokens, completion_tokens);
    --srv.in_flight;
  }

  bool write(DataSink& sink, const std::string& data) {
    last_write = Clock::now();
    return sink.write(data.data(), data.size()) || client_gone();
  }

  // Stream provider: one call per batch of events (usually one token).
  bool provide_stream(DataSink& sink) {
    std::string unused;
    std::vector<std::string> pieces;
    poll(kProbeInterval, unused, &pieces);
    std::string payload;
    for (const std::string& piece : pieces) {
      payload += sse_event(stream_chunk_json(meta, piece, first_chunk, std::nullopt));
      first_chunk = false;
    }
    if (done) {
      if (!error.empty()) {
        payload +=
            sse_event(error_json(error, "server_error", "", error_status == 503 ? "shutting_down" : "engine_error"));
      } else {
        const KvReport kvr = kv_report();
        nlohmann::json last = stream_chunk_json(meta, "", first_chunk, finish_reason);
        last["kv"] = kv_json(kvr);
        payload += sse_event(last);
        if (include_usage) payload += sse_event(stream_usage_json(meta, prompt_tokens, completion_tokens, kvr));
      }
      payload += kSseDone;
    } else if (payload.empty()) {
      // Nothing to send for a while: an SSE comment (clients ignore it) finds out whether
      // the client is still there.
      if (Clock::now() - last_write < kProbeInterval) return true;
      payload = ": ping\n\n";
    }
    if (!write(sink, payload)) return false;
    if (done) {
      sink.done();  // writes the last chunk before shutdown can see in_flight reach 0
      finalize(error.empty() ? 200 : error_status);
    }
    return true;
  }

  // Whole-response provider: waits for the end, probing with JSON-neutral spaces meanwhile.
  bool provide_whole(DataSink& sink) {
    while (!done) {
      poll(kProbeInterval, body_text);
      if (!done && Clock::now() - last_write >= kProbeInterval && !write(sink, " ")) return false;
    }
    const std::string body =
        error.empty()
            ? dump_json(completion_json(meta, body_text, finish_reason, prompt_tokens, completion_tokens, kv_report()))
            : dump_json(error_json(error, "server_error", "", error_status == 503 ? "shutting_down" : "engine_error"));
    if (!write(sink, body)) return false;
    sink.done();
    finalize(error.empty() ? 200 : error_status);
    return true;
  }
};

HttpServer::Impl::Impl(std::shared_ptr<const Model> m, ServerOptions o) : model(std::move(m)), opts(std::move(o)) {
  const int ctx = model->config().context_length;
  max_prompt_tokens = opts.max_prompt_tokens > 0 ? std::min(opts.max_prompt_tokens, ctx) : ctx;
  std::random_device rd;
  seed_base = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  scheduler = std::make_unique<BatchScheduler>(model, opts.scheduler);
  const int threads =
      opts.http_threads > 0 ? opts.http_threads : opts.scheduler.batch.max_sequences + opts.scheduler.max_queue + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(opts.max_body_bytes);
  http.set_read_timeout(opts.read_timeout_s, 0);
  http.set_write_timeout(opts.write_timeout_s, 0);
  http.set_keep_alive_timeout(opts.keep_alive_timeout_s);
  // Replaces httplib's defaults (SO_REUSEADDR and SO_REUSEPORT): without SO_REUSEPORT a
  // second server on the same port fails to bind instead of silently sharing it. Also
  // remembers the listening socket so that bind() can enlarge its backlog.
  http.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket = sock;
  });
  routes();
}

bool HttpServer::Impl::authorized(const Request& req, Response& res) {
  if (opts.api_key.empty()) return true;
  const std::string auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
      constant_time_equal(std::string_view(auth).substr(kBearer.size()), opts.api_key))
    return true;
  res.set_header("WWW-Authenticate", "Bearer");
  reply_error(
      res, endpoint_label(req.path),
      ApiError(401, auth.empty() ? "missing API key: send the header 'Authorization: Bearer KEY'" : "invalid API key",
               "", "invalid_api_key"));
  return false;
}

void HttpServer::Impl::reply_json(Response& res, const std::string& endpoint, const nlohmann::json& j, int status) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
  metrics.count_request(endpoint, status);
}

void HttpServer::Impl::reply_error(Response& res, const std::string& endpoint, const ApiError& e) {
  reply_json(res, endpoint, error_json(e), e.status());
}

void HttpServer::Impl::routes() {
  http.Get("/health", [this](const Request&, Response& res) {
    if (draining) {
      reply_json(res, "/health", {{"status", "shutting down"}}, 503);
    } else {
      reply_json(res, "/health", {{"status", "ok"}});
    }
  });
  http.Get("/v1/models", [this](const Request& req, Response& res) {
    if (!authorized(req, res)) return;
    nlohmann::json m = {{"id", opts.limits.model_id},
                        {"object", "model"},
                        {"created", 0},
                        {"owned_by", "h2o.cpp"},
                        {"context_length", model->config().context_length}};
    reply_json(res, "/v1/models", {{"object", "list"}, {"data", nlohmann::json::array({m})}});
  });
  http.Get("/metrics", [this](const Request& req, Response& res) {
    if (!authorized(req, res)) return;
    res.set_content(metrics.render(scheduler->stats(), in_flight.load()), "text/plain; version=0.0.4; charset=utf-8");
    metrics.count_request("/metrics", 200);
  });
  http.Post("/v1/completions", [this](const Request& req, Response& res) { handle_completion(req, res, false); });
  http.Post("/v1/chat/completions", [this](const Request& req, Response& res) { handle_completion(req, res, true); });

  // Errors httplib answers itself (no route: 404, body too large: 413, unreadable request:
  // 400) get OpenAI's error object too; responses that already have a body are ours.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
    if (!res.body.empty() || res.has_header("Content-Type")) return httplib::Server::HandlerResponse::Unhandled;
    std::string message =
        fmt::format("{} {}: the request could not be read (HTTP {})", req.method, req.path, res.status);
    if (res.status == 413) message = fmt::format("request body larger than the limit of {} bytes", opts.max_body_bytes);
    if (res.status == 404) message = fmt::format("no route for {} {}", req.method, req.path);
    const std::string code = res.status == 404 ? "not_found" : res.status == 413 ? "body_too_large" : "bad_request";
    res.set_content(dump_json(error_json(message, "invalid_request_error", "", code)), "application/json");
    metrics.count_request(endpoint_label(req.path), res.status);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([this](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_json(res, endpoint_label(req.path), error_json("internal error: " + what, "server_error"), 500);
  });
}

void HttpServer::Impl::handle_completion(const Request& req, Response& res, bool chat) {
  const auto t0 = Clock::now();
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  if (!authorized(req, res)) return;
  if (draining) {
    reply_error(res, endpoint, ApiError(503, "the server is shutting down", "", "shutting_down", "server_error"));
    return;
  }
  const Tokenizer& tok = model->tokenizer();
  const int ctx = model->config().context_length;
  try {
    const CompletionRequest cr = parse_completion_request(req.body, chat, opts.limits);
    const std::string prompt = chat ? render_chat(opts.chat_format, cr.messages) : cr.prompt;
    SequenceRequest sr;
    sr.prompt = tok.encode(prompt, EncodeOptions{.parse_special = chat});  // templates spell special tokens
    const int n_prompt = static_cast<int>(sr.prompt.size());
    if (n_prompt > max_prompt_tokens)
      throw ApiError(
          400, fmt::format("the prompt is {} tokens; this server accepts at most {}", n_prompt, max_prompt_tokens),
          chat ? "messages" : "prompt", "context_length_exceeded");
    // Without max_tokens: OpenAI's 16 for completions; chat runs to the context end.
    const int room = std::max(ctx - n_prompt, 0);
    sr.max_tokens =
        cr.max_tokens.value_or(chat ? std::min(room, opts.limits.max_tokens_limit) : opts.limits.default_max_tokens);
    sr.ignore_eos = cr.ignore_eos;
    sr.sampling = SamplerParams{cr.temperature, cr.top_k, cr.top_p, cr.seed.value_or(next_random())};
    sr.kv = merge_kv(opts.kv, cr);
    KvResolved kv;
    try {
      sr.sampling.validate();
      kv = resolve_kv(sr.kv, std::min(ctx, n_prompt + sr.max_tokens));
    } catch (const Error& e) {
      throw request_error(e);
    }

    auto queue = std::make_shared<EventQueue>();
    uint64_t id = 0;
    try {
      id = scheduler->submit(sr, [queue](const SequenceEvent& e) { queue->push(e); });
    } catch (const BusyError& e) {
      if (draining) throw ApiError(503, e.what(), "", "shutting_down", "server_error");
      res.set_header("Retry-After", "1");
      throw ApiError(429, e.what(), "", "queue_full", "rate_limit_error");
    } catch (const Error& e) {
      throw request_error(e);
    }

    auto gen = std::make_shared<Generation>(*this, cr.stop);
    gen->endpoint = endpoint;
    gen->meta = ResponseMeta{fmt::format("{}-{:016x}", chat ? "chatcmpl" : "cmpl", next_random()),
                             static_cast<int64_t>(std::time(nullptr)), opts.limits.model_id, chat};
    gen->stream = cr.stream;
    gen->include_usage = cr.include_usage;
    gen->queue = queue;
    gen->id = id;
    gen->prompt_tokens = n_prompt;
    gen->kv = kv;
    gen->prev = sr.prompt.back();
    gen->t0 = t0;
    gen->last_write = Clock::now();
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto release = [gen](bool) { gen->finalize(499); };
    if (cr.stream) {
      res.set_chunked_content_provider(
          "text/event-stream", [gen](size_t, DataSink& sink) { return gen->provide_stream(sink); }, release);
    } else {
      res.set_chunked_content_provider(
          kJsonStreamType, [gen](size_t, DataSink& sink) { return gen->provide_whole(sink); }, release);
    }
  } catch (const ApiError& e) {
    reply_error(res, endpoint, e);
  } catch (const Error& e) {
    reply_error(res, endpoint, request_error(e));
  }
}

HttpServer::HttpServer(std::shared_ptr<const Model> model, ServerOptions opts)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(opts))) {}

HttpServer::~HttpServer() {
  impl_->http.stop();
  impl_->scheduler->shutdown(false);
}

int HttpServer::bind() {
  const ServerOptions& o = impl_->opts;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) fail("cannot listen on {} (any port)", o.host);
  } else if (!impl_->http.bind_to_port(o.host, o.port)) {
    fail("cannot listen on {}:{} (address in use?)", o.host, o.port);
  }
  // httplib listens with a backlog of 5: a burst of clients (64 connecting at once) would
  // overflow it and wait for SYN retransmits. Linux lets listen() raise it in place.
  if (impl_->listen_socket != INVALID_SOCKET) ::listen(impl_->listen_socket, SOMAXCONN);
  return port;
}

bool HttpServer::listen() { return impl_->http.listen_after_bind(); }

void HttpServer::begin_drain() { impl_->draining = true; }

int HttpServer::in_flight() const { return impl_->in_flight.load(); }

void HttpServer::finish_shutdown(std::chrono::milliseconds wait) {
  impl_->draining = true;
  impl_->scheduler->shutdown(false);  // what still runs gets a "cancelled" event
  const auto deadline = Clock::now() + wait;
  while (impl_->in_flight.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->http.stop();
}

}  // namespace h2o::serve
