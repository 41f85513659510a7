// The bytes of HTTP/1.1 responses as `h2o serve` writes them: a whole response with
// Content-Length, or a head followed by chunks (streams). Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2o::serve {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

std::string_view reason_phrase(int status);

// Status line, Content-Type, Content-Length, Connection, the extra headers, the body.
std::string http_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                          const HeaderList& extra = {});

// Status line and headers of a response whose body follows in pieces: chunked, or (for
// HTTP/1.0 clients, which do not know chunks) delimited by closing the connection.
std::string http_stream_head(int status, std::string_view content_type, bool chunked, bool keep_alive,
                             const HeaderList& extra = {});

// One chunk of a chunked body ("<hex size>\r\n<data>\r\n"); empty data gives "" (an empty
// chunk would end the body: that is kLastChunk).
std::string http_chunk(std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace h2o::serve
