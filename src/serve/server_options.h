// Settings of `h2o serve` (the flags of apps/h2o/cmd_serve.cpp) and their validation.
//
// The HTTP limits bound what any client can hold: a request's header and body must arrive
// within read_timeout_s of its first byte (a total deadline, not one per receive), the
// header within max_header_bytes and max_header_count fields (431 otherwise), the body
// within max_body_bytes (413); a connection may idle keep_alive_timeout_s between
// requests; every write must complete within write_timeout_s. At most max_connections are
// open at once and max_client_connections per client address: one more is answered 503
// and closed at once. None of these costs a thread: connections, waiting requests and
// queue slots are state in one event loop.
#pragma once

#include <cstddef>
#include <string>

#include "kv/kv_config.h"
#include "runtime/batch_scheduler.h"
#include "serve/chat_template.h"
#include "serve/openai_protocol.h"

namespace h2o::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (bind() returns it)
  std::string api_key;         // empty: no authentication
  SchedulerOptions scheduler;  // threads, --parallel (max_sequences), queue length
  KvSettings kv;               // defaults for requests without kv_* fields
  ProtocolLimits limits;       // model id, max_tokens bound, stop strings, JSON depth
  ChatFormat chat_format = ChatFormat::Plain;
  int max_prompt_tokens = 0;  // 0: the model's context length

  size_t max_body_bytes = size_t{1} << 20;
  size_t max_header_bytes = size_t{16} << 10;  // request line and header fields together
  int max_header_count = 64;
  int read_timeout_s = 10;
  int write_timeout_s = 10;
  int keep_alive_timeout_s = 5;
  int max_connections = 1024;
  int max_client_connections = 256;
  int http_threads = 2;  // threads that parse and tokenize request bodies (the event loop never does)
};

// Upper bounds of the flags (a queue slot or connection costs memory, not a thread, but a
// value beyond these is a typo, and the process has a descriptor limit).
inline constexpr int kMaxQueue = 1 << 20;
inline constexpr int kMaxConnections = 1 << 20;

// Checks every limit and the relations between them; throws h2o::Error naming the flag
// ("--max-client-connections: 300 is more than --max-connections 200").
void validate_server_options(const ServerOptions& o);

// File descriptors the server needs for `o` (connections plus a margin for the model file,
// the listener and the event loop's own).
long needed_file_descriptors(const ServerOptions& o);

// Raises the soft RLIMIT_NOFILE towards the hard limit if `needed` is more; throws
// h2o::Error naming --max-connections and `ulimit -n` if the hard limit is too low.
void ensure_file_descriptors(long needed, int max_connections);

}  // namespace h2o::serve
