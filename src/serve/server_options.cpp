#include "serve/server_options.h"

#include <sys/resource.h>

#include "common/check.h"

namespace h2o::serve {
namespace {

void check_range(const char* flag, long value, long lo, long hi) {
  if (value < lo || value > hi) fail("{}: must be in [{}, {}], got {}", flag, lo, hi, value);
}

constexpr long kSpareDescriptors = 64;  // model file, listener, epoll, eventfds, stdio, the engine's

}  // namespace

void validate_server_options(const ServerOptions& o) {
  check_range("--port", o.port, 0, 65535);
  check_range("--parallel", o.scheduler.batch.max_sequences, 1, 4096);
  check_range("--queue", o.scheduler.max_queue, 0, kMaxQueue);
  check_range("--max-connections", o.max_connections, 1, kMaxConnections);
  check_range("--max-client-connections", o.max_client_connections, 1, kMaxConnections);
  if (o.max_client_connections > o.max_connections)
    fail("--max-client-connections: {} is more than --max-connections {}", o.max_client_connections, o.max_connections);
  check_range("--read-timeout", o.read_timeout_s, 1, 3600);
  check_range("--write-timeout", o.write_timeout_s, 1, 3600);
  check_range("--keep-alive-timeout", o.keep_alive_timeout_s, 1, 3600);
  check_range("--max-header-count", o.max_header_count, 1, 10000);
  check_range("--http-threads", o.http_threads, 1, 256);
  if (o.max_header_bytes < 256 || o.max_header_bytes > (size_t{1} << 20))
    fail("--max-header-bytes: must be in [256, 1048576], got {}", o.max_header_bytes);
  if (o.max_body_bytes < 64 || o.max_body_bytes > (size_t{1} << 30))
    fail("--max-body: must be in [64, 1073741824], got {}", o.max_body_bytes);
  if (o.max_prompt_tokens < 0) fail("--max-prompt-tokens: must be at least 0, got {}", o.max_prompt_tokens);
}

long needed_file_descriptors(const ServerOptions& o) { return o.max_connections + kSpareDescriptors; }

void ensure_file_descriptors(long needed, int max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;  // unknown: accept() will report EMFILE if it comes to that
  if (rl.rlim_cur == RLIM_INFINITY || static_cast<long>(rl.rlim_cur) >= needed) return;
  if (rl.rlim_max != RLIM_INFINITY && static_cast<long>(rl.rlim_max) < needed)
    fail(
        "--max-connections: {} connections need {} file descriptors, but the limit is {} (raise `ulimit -n` or lower "
        "--max-connections)",
        max_connections, needed, static_cast<long>(rl.rlim_max));
  const auto current = static_cast<long>(rl.rlim_cur);
  rl.rlim_cur = static_cast<rlim_t>(needed);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    fail("--max-connections: {} connections need {} file descriptors and the limit of {} cannot be raised",
         max_connections, needed, current);
}

}  // namespace h2o::serve
