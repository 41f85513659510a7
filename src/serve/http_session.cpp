#include "serve/http_session.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "common/printable.h"
#include "serve/api_key.h"
#include "serve/completion.h"
#include "serve/http_response.h"
#include "serve/server_core.h"
#include "serve/tokenizer_api.h"

namespace h2o::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// After an error response, or when the server closes a connection, what the client still
// sends is read and dropped for this long (up to kLingerBytes) before the socket closes:
// closing with unread input would reset the connection and could destroy the response
// before the client reads it.
constexpr std::chrono::seconds kLinger{2};
constexpr size_t kLingerBytes = size_t{1} << 20;

constexpr const char* kJson = "application/json";

// Metrics label for a path: the routes this server has, everything else "other" (paths
// come from clients and must not create unbounded label sets).
std::string endpoint_label(std::string_view path) {
  for (const char* known : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/tokenize",
                            "/detokenize", "/tokenizer_info"}) {
    if (path == known) return known;
  }
  return "other";
}

// The parts of a request this server uses.
struct Request {
  http::verb method = http::verb::unknown;
  std::string method_text;
  std::string target;
  unsigned version = 11;
  int fields = 0;
  int authorization_count = 0;
  std::string authorization;
  bool authorization_padded = false;  // whitespace after the value (dropped by the HTTP grammar)
  bool expect_continue = false;
  std::string body;
};

// Beast's HTTP/1 request parser (request line, header syntax, header_limit on bytes,
// body_limit, chunked bodies) with a cap on the number of header fields and the
// Authorization value as sent.
class RequestParser : public http::basic_parser<true> {
 public:
  RequestParser(int max_fields, const beast::flat_buffer& input) : max_fields_(max_fields), input_(input) {}
  Request& request() { return req_; }

 private:
  void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target, int version,
                       beast::error_code&) override {
    req_.method = method;
    req_.method_text = std::string(method_str);
    req_.target = std::string(target);
    req_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
    ec = http::error::bad_version;  // unreachable for a request parser
  }
  void on_field_impl(http::field name, beast::string_view, beast::string_view value, beast::error_code& ec) override {
    if (++req_.fields > max_fields_) {
      ec = http::error::header_limit;
      return;
    }
    if (name == http::field::authorization) {
      ++req_.authorization_count;
      req_.authorization = std::string(value);
      req_.authorization_padded = padded(value);
    } else if (name == http::field::expect) {
      req_.expect_continue = beast::iequals(value, "100-continue");
    }
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, beast::error_code&) override {
    if (length) req_.body.reserve(static_cast<size_t>(*length));  // at most body_limit: checked before this
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  // Beast trims the whitespace that ends a field value (RFC 9110 OWS) and passes a view
  // into the input; the byte after that view tells whether there was any. A value that is
  // not a plain view of the input (a folded line) counts as padded: the key must be sent
  // exactly.
  bool padded(beast::string_view value) const {
    const auto in = input_.data();
    const auto* begin = static_cast<const char*>(in.data());
    const char* end = begin + in.size();
    const char* after = value.data() + value.size();
    if (value.data() < begin || after >= end) return true;
    return *after != '\r';
  }

  int max_fields_;
  const beast::flat_buffer& input_;
  Request req_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::string client, ServerCore& core, net::thread_pool& prep)
      : stream_(std::move(socket)), client_(std::move(client)), core_(core), prep_(prep) {
    // Pipelined bytes read while a response is produced are kept up to one more request.
    buffer_max_ = core_.opts.max_header_bytes + core_.opts.max_body_bytes + 4096;
  }
  ~Session() {
    if (completion_) completion_->client_gone();
    release();
  }

  void start() {
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);  // SSE chunks go out as they come
    read_request();
  }

 private:
  // ---- reading ----

  void read_request() {
    parser_.emplace(core_.opts.max_header_count, buffer_);
    parser_->header_limit(static_cast<std::uint32_t>(core_.opts.max_header_bytes));
    parser_->body_limit(core_.opts.max_body_bytes);
    if (first_ || buffer_.size() > 0) {
      first_ = false;
      read_header();
      return;
    }
    // Keep-alive: wait for the next request's first bytes, then its deadline starts.
    stream_.expires_after(std::chrono::seconds(core_.opts.keep_alive_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->close();
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    // One deadline for the header and the body together.
    stream_.expires_after(std::chrono::seconds(core_.opts.read_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    if (parser_->is_done()) return handle();
    if (parser_->request().expect_continue) {
      // The client waits for this before sending its body (the deadline still runs).
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code wec, size_t) {
                         if (wec) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->on_read_error(ec);
      self->handle();
    });
  }

  void on_read_error(beast::error_code ec) {
    keep_alive_ = false;
    const std::string endpoint = parser_ ? endpoint_label(path_of(parser_->request().target)) : "other";
    endpoint_ = endpoint;
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset || ec == net::error::broken_pipe) {
      // Closed, reset, or past its deadline (Beast has closed the socket then): nobody to answer.
      if (ec == beast::error::timeout) core_.metrics.count_connection_event("read_timeout");
      return close();
    }
    if (ec == http::error::header_limit) {
      return respond_error(ApiError(431,
                                    fmt::format("request header too large: at most {} bytes and {} fields",
                                                core_.opts.max_header_bytes, core_.opts.max_header_count),
                                    "", "header_too_large"));
    }
    if (ec == http::error::body_limit) {
      return respond_error(
          ApiError(413, fmt::format("request body larger than the limit of {} bytes", core_.opts.max_body_bytes), "",
                   "body_too_large"));
    }
    respond_error(ApiError(400, fmt::format("the request could not be read: {}", ec.message()), "", "bad_request"));
  }

  static std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

  // ---- handling ----

  void handle() {
    stream_.expires_never();
    Request& r = parser_->request();
    t0_ = Clock::now();
    keep_alive_ = parser_->keep_alive();
    const std::string_view path = path_of(r.target);
    endpoint_ = endpoint_label(path);
    const bool get = r.method == http::verb::get, post = r.method == http::verb::post;
    if (get && path == "/health") {
      if (core_.draining) return respond_json(503, R"({"status":"shutting down"})");
      return respond_json(200, R"({"status":"ok"})");
    }
    if (get && path == "/v1/models") {
      if (!authorized()) return;
      nlohmann::json m = {{"id", core_.opts.limits.model_id},
                          {"object", "model"},
                          {"created", 0},
                          {"owned_by", "h2o.cpp"},
                          {"context_length", core_.model->config().context_length}};
      return respond_json(200, dump_json(nlohmann::json{{"object", "list"}, {"data", nlohmann::json::array({m})}}));
    }
    if (get && path == "/metrics") {
      if (!authorized()) return;
      core_.metrics.count_request("/metrics", 200);
      return respond(200, "text/plain; version=0.0.4; charset=utf-8",
                     core_.metrics.render(core_.scheduler->stats(), core_.in_flight.load(), core_.limiter.open()),
                     false);
    }
    if ((post && (path == "/tokenize" || path == "/detokenize")) || (get && path == "/tokenizer_info")) {
      if (!authorized()) return;
      return tokenizer_endpoint(path);
    }
    if (post && (path == "/v1/completions" || path == "/v1/chat/completions")) {
      if (!authorized()) return;
      if (core_.draining)
        return respond_error(ApiError(503, "the server is shutting down", "", "shutting_down", "server_error"));
      return submit_completion(path == "/v1/chat/completions");
    }
    // Method and path come from the client: escaped and cut before they reach a message.
    std::string what = printable_string(r.method_text.substr(0, 32)) + " " + printable_string(path.substr(0, 200));
    respond_error(ApiError(404, "no route for " + what, "", "not_found"));
  }

  // No engine step, but a large body takes a while to tokenize: done on the preparation
  // pool (as completions are), answered on the connection's strand.
  void tokenizer_endpoint(std::string_view path) {
    auto self = shared_from_this();
    net::post(prep_, [self, path = std::string(path), body = std::move(parser_->request().body)] {
      const Tokenizer& tok = self->core_.model->tokenizer();
      const int ctx = self->core_.model->config().context_length;
      std::string out;
      std::optional<ApiError> error;
      try {
        if (path == "/tokenize") {
          out = tokenize_response(tok, body, ctx, self->core_.opts.limits);
        } else if (path == "/detokenize") {
          out = detokenize_response(tok, body, self->core_.opts.limits);
        } else {
          out = tokenizer_info_response(tok, ctx);
        }
      } catch (const ApiError& e) {
        error = e;
      } catch (const std::exception& e) {
        error = ApiError(400, e.what(), "", "invalid_value");
      }
      net::post(self->stream_.get_executor(), [self, out = std::move(out), error] {
        if (self->closed_) return;
        if (error) return self->respond_error(*error);
        self->respond_json(200, out);
      });
    });
  }

  bool authorized() {
    const std::string& key = core_.opts.api_key;
    if (key.empty()) return true;
    const Request& r = parser_->request();
    if (r.authorization_count == 1 && !r.authorization_padded && bearer_matches(r.authorization, key)) return true;
    respond_error(ApiError(401,
                           r.authorization_count == 0 ? "missing API key: send the header 'Authorization: Bearer KEY'"
                                                      : "invalid API key",
                           "", "invalid_api_key"),
                  {{"WWW-Authenticate", "Bearer"}});
    return false;
  }

  void submit_completion(bool chat) {
    auto self = shared_from_this();
    std::weak_ptr<Session> weak = self;
    auto executor = stream_.get_executor();
    // Engine thread -> this connection's strand; the posted handler polls the completion.
    Completion::Notify notify = [weak, executor] {
      net::post(executor, [weak] {
        if (auto s = weak.lock()) s->on_events();
      });
    };
    net::post(prep_, [self, body = std::move(parser_->request().body), chat, t0 = t0_, notify = std::move(notify)] {
      std::shared_ptr<Completion> c;
      std::optional<ApiError> error;
      try {
        c = Completion::submit(self->core_, body, chat, t0, notify);
      } catch (const ApiError& e) {
        error = e;
      } catch (const Error& e) {
        error = request_error(e);
      } catch (const std::exception& e) {
        error = ApiError(500, std::string("internal error: ") + e.what(), "", "", "server_error");
      }
      net::post(self->stream_.get_executor(), [self, c, error] { self->on_submitted(c, error); });
    });
  }

  void on_submitted(const std::shared_ptr<Completion>& c, const std::optional<ApiError>& error) {
    if (closed_) {
      if (c) c->client_gone();
      return;
    }
    if (error) {
      HeaderList extra;
      if (error->status() == 429) extra.emplace_back("Retry-After", "1");
      return respond_error(*error, extra);
    }
    completion_ = c;
    if (c->stream()) {
      // HTTP/1.0 has no chunks: the stream then ends with the connection.
      chunked_ = parser_->request().version >= 11;
      if (!chunked_) keep_alive_ = false;
      send(http_stream_head(200, "text/event-stream", chunked_, keep_alive_, {{"Cache-Control", "no-cache"}}));
    }
    watch_peer();
    on_events();
  }

  void on_events() {
    // Notifications can outnumber polls (one is posted per engine event): once the last
    // bytes of this response are queued, a late one must not send them again.
    if (!completion_ || closed_ || response_done_) return;
    Completion& c = *completion_;
    const std::string out = c.poll();
    if (c.stream()) {
      if (!out.empty()) send(chunked_ ? http_chunk(out) : out);
      if (c.done()) {
        if (chunked_) send(std::string(kLastChunk));
        finish_response();
      }
    } else if (c.done()) {
      send(http_response(c.status(), kJson, c.body(), keep_alive_, {{"Cache-Control", "no-cache"}}));
      finish_response();
    }
  }

  // ---- the peer, while a response is produced ----

  void watch_peer() {
    watching_ = true;
    const unsigned id = ++watch_id_;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), id](beast::error_code ec) {
      self->on_peer_readable(ec, id);
    });
  }

  void on_peer_readable(beast::error_code ec, unsigned id) {
    if (id != watch_id_ || closed_) return;  // cancelled by finish_response, or closed
    watching_ = false;
    if (ec == net::error::operation_aborted) return;
    if (ec) return peer_gone();
    beast::error_code aec;
    const size_t available = stream_.socket().available(aec);
    // Readable with nothing to read: the client closed its side (or reset the connection).
    if (aec || available == 0) return peer_gone();
    const size_t room = buffer_max_ > buffer_.size() ? buffer_max_ - buffer_.size() : 0;
    if (room == 0) return;  // enough pipelined bytes held: stop reading until this response is done
    const size_t n = stream_.socket().read_some(buffer_.prepare(std::min(available, room)), aec);
    if (aec) return peer_gone();
    buffer_.commit(n);
    watch_peer();
  }

  void peer_gone() {
    if (completion_) {
      completion_->client_gone();
      completion_.reset();
    }
    close();
  }

  // ---- writing ----

  void respond(int status, std::string_view content_type, std::string body, bool count = true,
               const HeaderList& extra = {}) {
    if (count) core_.metrics.count_request(endpoint_, status);
    send(http_response(status, content_type, body, keep_alive_, extra));
    finish_response();
  }
  void respond_json(int status, std::string body) { respond(status, kJson, std::move(body)); }
  void respond_error(const ApiError& e, const HeaderList& extra = {}) {
    respond(e.status(), kJson, dump_json(error_json(e)), true, extra);
  }

  void send(std::string bytes) {
    if (closed_) return;
    outbox_ += bytes;
    if (!write_pending_) write_next();
  }

  // All bytes of the current response are queued: when they are written, the connection
  // moves on to the next request (or closes).
  void finish_response() {
    response_done_ = true;
    if (!write_pending_ && outbox_.empty()) after_response();
  }

  void write_next() {
    writing_.swap(outbox_);
    outbox_.clear();
    write_pending_ = true;
    stream_.expires_after(std::chrono::seconds(core_.opts.write_timeout_s));
    net::async_write(stream_, net::buffer(writing_),
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    write_pending_ = false;
    writing_.clear();
    if (ec) {
      if (ec == beast::error::timeout) core_.metrics.count_connection_event("write_timeout");
      return peer_gone();
    }
    if (!outbox_.empty()) return write_next();
    if (response_done_) after_response();
  }

  void after_response() {
    response_done_ = false;
    if (watching_) {
      // Only the peer watch is pending now (no write): cancelling it touches nothing else.
      ++watch_id_;
      watching_ = false;
      beast::error_code ec;
      stream_.socket().cancel(ec);
    }
    if (completion_) {
      completion_->finish();
      completion_.reset();
    }
    stream_.expires_never();
    if (keep_alive_ && !core_.draining) return read_request();
    linger_close();
  }

  // ---- closing ----

  void linger_close() {
    if (closed_) return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLinger);
    buffer_.consume(buffer_.size());
    drain_input();
  }

  void drain_input() {
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close();
      self->drain_input();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    release();
  }

  void release() {
    if (released_) return;
    released_ = true;
    core_.limiter.release(client_);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  size_t buffer_max_ = 0;
  std::optional<RequestParser> parser_;
  std::string client_;
  ServerCore& core_;
  net::thread_pool& prep_;

  bool first_ = true;
  bool keep_alive_ = true;
  Clock::time_point t0_;
  std::string endpoint_ = "other";
  std::shared_ptr<Completion> completion_;
  bool chunked_ = false;

  std::string outbox_, writing_;
  bool write_pending_ = false, response_done_ = false;
  bool watching_ = false;
  unsigned watch_id_ = 0;
  size_t lingered_ = 0;
  bool closed_ = false, released_ = false;
};

}  // namespace

void start_http_session(tcp::socket socket, std::string client, ServerCore& core, net::thread_pool& prep) {
  std::make_shared<Session>(std::move(socket), std::move(client), core, prep)->start();
}

}  // namespace h2o::serve
