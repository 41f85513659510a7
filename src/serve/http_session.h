// One client connection of `h2o serve`, served on the event loop (Boost.Beast over Asio):
// no thread is tied to it, whatever the client does.
//
//   read  : a request's header and body must arrive within --read-timeout of its first
//           byte (one deadline for the whole read, so trickling a byte at a time does not
//           extend it); between requests the connection may idle --keep-alive-timeout.
//           Header bytes, header fields and body bytes are capped (431, 431, 413).
//   handle: /health, /v1/models and /metrics are answered at once; a completion body is
//           parsed and tokenized on the preparation pool (never on the event loop) and
//           submitted to the engine, whose events come back as posts to this connection.
//   write : every write must finish within --write-timeout. Streams send each token as
//           an SSE chunk; whole responses are sent when the generation ends, with their
//           real status (503 if the server cancelled it at shutdown).
//   peer  : while a generation runs the socket is watched for the client closing it: the
//           sequence is cancelled and its KV cache freed before the next step. Bytes of
//           pipelined requests read meanwhile are kept; requests are answered in order.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <string>

namespace h2o::serve {

struct ServerCore;

// Serves an accepted connection that the limiter admitted for `client`; the connection
// releases that slot when it closes. `prep` runs request parsing and tokenization.
void start_http_session(boost::asio::ip::tcp::socket socket, std::string client, ServerCore& core,
                        boost::asio::thread_pool& prep);

}  // namespace h2o::serve
