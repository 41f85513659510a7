#include "serve/http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <random>
#include <thread>

#include "common/check.h"
#include "common/printable.h"
#include "serve/http_response.h"
#include "serve/http_session.h"
#include "serve/server_core.h"

namespace h2o::serve {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Answer to a connection over the limits: written without waiting (it fits any socket
// buffer), then the socket is closed. Nothing is kept for it.
std::string refusal(const std::string& message) {
  return http_response(503, "application/json",
                       dump_json(error_json(message, "server_error", "", "too_many_connections")), false,
                       {{"Retry-After", "1"}});
}

}  // namespace

ServerCore::ServerCore(std::shared_ptr<const Model> m, ServerOptions o)
    : model(std::move(m)), opts(std::move(o)), limiter(opts.max_connections, opts.max_client_connections) {
  validate_server_options(opts);
  const int ctx = model->config().context_length;
  max_prompt_tokens = opts.max_prompt_tokens > 0 ? std::min(opts.max_prompt_tokens, ctx) : ctx;
  std::random_device rd;
  seed_base_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  scheduler = std::make_unique<BatchScheduler>(model, opts.scheduler);
}

uint64_t ServerCore::next_random() { return splitmix64(seed_base_ + counter_.fetch_add(1)); }

struct HttpServer::Impl {
  // Declaration order is destruction order reversed: the pool and the loop (whose pending
  // handlers own connections) go before the core the connections use.
  ServerCore core;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::steady_timer backoff{ioc};
  net::thread_pool prep;
  std::atomic<bool> stopped{false};

  Impl(std::shared_ptr<const Model> m, ServerOptions o)
      : core(std::move(m), std::move(o)), prep(static_cast<size_t>(core.opts.http_threads)) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec, tcp::socket socket) {
      on_accept(ec, std::move(socket));
    });
  }

  void on_accept(boost::system::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open() || ec == net::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory: pause briefly rather than spin on the error.
      core.metrics.count_connection_event("accept_error");
      backoff.expires_after(std::chrono::milliseconds(50));
      backoff.async_wait([this](boost::system::error_code wec) {
        if (!wec) accept();
      });
      return;
    }
    boost::system::error_code aec;
    const tcp::endpoint peer = socket.remote_endpoint(aec);
    if (!aec) {
      const std::string client = peer.address().to_string();
      switch (core.limiter.admit(client)) {
        case ConnectionLimiter::Verdict::Admitted:
          start_http_session(std::move(socket), client, core, prep);
          break;
        case ConnectionLimiter::Verdict::TooManyTotal:
          refuse(socket, "refused_total",
                 fmt::format("too many connections: the server holds at most {}", core.opts.max_connections));
          break;
        case ConnectionLimiter::Verdict::TooManyFromClient:
          refuse(socket, "refused_client",
                 fmt::format("too many connections from {}: at most {} per client", printable_string(client),
                             core.opts.max_client_connections));
          break;
      }
    }
    accept();
  }

  void refuse(tcp::socket& socket, const char* event, const std::string& message) {
    core.metrics.count_connection_event(event);
    const std::string reply = refusal(message);
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.send(net::buffer(reply), 0, ec);  // never blocks: a would-block just loses the courtesy
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  void stop() {
    if (stopped.exchange(true)) return;
    net::post(ioc, [this] {
      boost::system::error_code ec;
      acceptor.close(ec);
      backoff.cancel();
      ioc.stop();
    });
  }
};

HttpServer::HttpServer(std::shared_ptr<const Model> model, ServerOptions opts)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(opts))) {}

HttpServer::~HttpServer() {
  // The engine first: its callbacks post to connections on the loop.
  impl_->core.scheduler->shutdown(false);
  impl_->ioc.stop();
  impl_->prep.join();
}

int HttpServer::bind() {
  const ServerOptions& o = impl_->core.opts;
  boost::system::error_code ec;
  tcp::resolver resolver(impl_->ioc);
  const auto results = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) fail("cannot listen on {}: {}", printable_string(o.host), ec.message());
  const tcp::endpoint ep = results.begin()->endpoint();
  tcp::acceptor& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  // SO_REUSEADDR (a restarted server binds at once) but not SO_REUSEPORT: a second server
  // on the same port fails to bind instead of silently sharing it.
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen on {}:{} ({})", printable_string(o.host), o.port, ec.message());
  return a.local_endpoint().port();
}

bool HttpServer::listen() {
  if (!impl_->acceptor.is_open()) return false;
  impl_->accept();
  impl_->ioc.run();
  return true;
}

void HttpServer::begin_drain() { impl_->core.draining = true; }

int HttpServer::in_flight() const { return impl_->core.in_flight.load(); }

void HttpServer::finish_shutdown(std::chrono::milliseconds wait) {
  impl_->core.draining = true;
  impl_->core.scheduler->shutdown(false);  // what still runs gets a "cancelled" event
  const auto deadline = Clock::now() + wait;
  while (impl_->core.in_flight.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->stop();
}

}  // namespace h2o::serve
