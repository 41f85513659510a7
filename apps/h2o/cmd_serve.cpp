// `h2o serve`: the OpenAI-compatible HTTP server (src/serve/http_server.h).
//
// Prints "listening on http://HOST:PORT" on stderr once the socket is bound (with
// --port 0 the port is the one the system chose). SIGTERM/SIGINT drain: new requests get
// 503, in-flight ones run on for --shutdown-grace seconds (a second signal ends the grace
// at once), the rest are cancelled, and the process exits 0.
//
// Signals: SIGINT/SIGTERM are blocked in every thread (the mask is set before any thread
// starts and inherited) and taken synchronously by one waiter thread with sigtimedwait,
// so there is no signal handler and no global state. SIGPIPE is ignored: a client that
// disconnects must fail a write, not kill the server.
#include <fmt/format.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "common/printable.h"
#include "serve/http_server.h"

namespace h2o::cli {
namespace {

struct ServeFlags {
  ModelFlags model;
  KvFlags kv;
  int threads = 1;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 16;
  int queue = 64;
  int max_step_tokens = 512;
  int max_prompt_tokens = 0;
  int max_tokens_limit = 0;
  std::string api_key;
  double shutdown_grace = 10.0;
  serve::ServerOptions http;  // the HTTP limits, flags bound directly
  std::string alias;
  std::string chat_template = "auto";
};

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Waits for SIGINT/SIGTERM until `stopped`; on the first, drains and shuts the server down.
void wait_for_signals(serve::HttpServer& server, const std::atomic<bool>& stopped, double grace_s) {
  const sigset_t set = shutdown_signals();
  const timespec tick{0, 100'000'000};
  while (!stopped) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig < 0) continue;
    std::fprintf(stderr, "received %s: draining (%d in flight, grace %.1f s; signal again to stop now)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", server.in_flight(), grace_s);
    server.begin_drain();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
    while (server.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
      if (sigtimedwait(&set, nullptr, &tick) > 0) break;
    }
    if (server.in_flight() > 0) std::fprintf(stderr, "cancelling %d requests\n", server.in_flight());
    server.finish_shutdown();
    return;
  }
}

serve::ChatFormat pick_chat_format(const std::string& flag, const std::string& model_path) {
  if (flag != "auto") return serve::chat_format_from_name(flag);
  const std::optional<std::string> tmpl = serve::read_chat_template(model_path);
  if (!tmpl) return serve::ChatFormat::Plain;
  if (auto f = serve::detect_chat_format(*tmpl)) return *f;
  std::fprintf(stderr, "notice: the model's chat template is not one this server renders; using 'plain'\n");
  return serve::ChatFormat::Plain;
}

void run_serve(const ServeFlags& f) {
  // Before any thread exists, so that every thread inherits the mask.
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // The limits are checked before the model loads: a bad flag fails at once.
  serve::ServerOptions o = f.http;  // the HTTP limits are bound to their flags directly
  o.host = f.host;
  o.port = f.port;
  o.api_key = f.api_key;
  o.scheduler.batch.threads = f.threads;
  o.scheduler.batch.max_sequences = f.parallel;
  o.scheduler.batch.max_step_tokens = f.max_step_tokens;
  o.scheduler.max_queue = f.queue;
  o.max_prompt_tokens = f.max_prompt_tokens;
  o.kv = f.kv.settings();
  try {
    serve::validate_server_options(o);
    serve::ensure_file_descriptors(serve::needed_file_descriptors(o), o.max_connections);
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());  // a flag error: exit status 2, as for out-of-range values
  }

  auto model = f.model.load();
  (void)resolve_kv(o.kv, model->config().context_length);  // bad flag values fail now, not per request
  o.limits.model_id = f.alias.empty() ? std::filesystem::path(f.model.model).stem().string() : f.alias;
  o.limits.max_tokens_limit = f.max_tokens_limit > 0 ? f.max_tokens_limit : model->config().context_length;
  o.chat_format = pick_chat_format(f.chat_template, f.model.model);

  serve::HttpServer server(model, o);
  const int port = server.bind();
  std::fprintf(stderr, "%s\n",
               terminal_safe(fmt::format("h2o serve: model '{}' ({}), chat template {}, parallel {}, queue {}, kv {}",
                                         o.limits.model_id, model->describe(), serve::chat_format_name(o.chat_format),
                                         f.parallel, f.queue, o.kv.describe()))
                   .c_str());
  std::fprintf(stderr, "listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stderr);

  std::atomic<bool> stopped{false};
  std::thread waiter([&] { wait_for_signals(server, stopped, f.shutdown_grace); });
  const bool ok = server.listen();
  stopped = true;
  waiter.join();
  if (!ok) fail("the HTTP listener stopped with an error");
  std::fprintf(stderr, "stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  f->model.add(*cmd);
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_option("--host", f->host, "Address to listen on (loopback unless told otherwise)")->capture_default_str();
  cmd->add_option("--port", f->port, "TCP port (0: any free port, printed on stderr)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--parallel", f->parallel, "Requests decoded together (sequences in the batch)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--queue", f->queue, "Requests that may wait for a free sequence (more get 429); no thread each")
      ->check(CLI::Range(0, serve::kMaxQueue))
      ->capture_default_str();
  cmd->add_option("--max-step-tokens", f->max_step_tokens, "Prefill tokens per batched step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  serve::ServerOptions& h = f->http;
  cmd->add_option("--max-body", h.max_body_bytes, "Largest request body in bytes (more get 413)")
      ->check(unsigned_integer(size_t{1} << 30))
      ->check(CLI::Range(size_t{64}, size_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-header-bytes", h.max_header_bytes, "Largest request line + headers in bytes (more get 431)")
      ->check(unsigned_integer(size_t{1} << 20))
      ->check(CLI::Range(size_t{256}, size_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--max-header-count", h.max_header_count, "Most header fields in a request (more get 431)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--max-prompt-tokens", f->max_prompt_tokens, "Longest prompt in tokens (0: the context length)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--max-tokens-limit", f->max_tokens_limit,
                  "Largest max_tokens a request may ask (0: the context length)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--api-key", f->api_key, "Require 'Authorization: Bearer KEY' (except /health)")
      ->envname("H2O_API_KEY");
  cmd->add_option("--shutdown-grace", f->shutdown_grace, "Seconds in-flight requests may finish after SIGTERM/SIGINT")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--read-timeout", h.read_timeout_s,
                  "Seconds a request (header and body) may take to arrive, from its first byte")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--write-timeout", h.write_timeout_s, "Seconds a write to a client may take")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--keep-alive-timeout", h.keep_alive_timeout_s, "Seconds a connection may idle between requests")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--max-connections", h.max_connections, "Open connections in total (more are answered 503)")
      ->check(CLI::Range(1, serve::kMaxConnections))
      ->capture_default_str();
  cmd->add_option("--max-client-connections", h.max_client_connections,
                  "Open connections per client address (more are answered 503)")
      ->check(CLI::Range(1, serve::kMaxConnections))
      ->capture_default_str();
  cmd->add_option("--http-threads", h.http_threads, "Threads that parse and tokenize request bodies")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--model-alias", f->alias, "Model name in /v1/models and responses (default: the file's stem)");
  cmd->add_option("--chat-template", f->chat_template,
                  "Chat format: auto (from the GGUF's tokenizer.chat_template), plain, chatml, llama2, zephyr")
      ->capture_default_str();
  cmd->callback([f] { run_serve(*f); });
}

}  // namespace h2o::cli
