#include "serve/http_response.h"

#include <fmt/format.h>

namespace h2o::serve {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

namespace {

void append_head(std::string& out, int status, std::string_view content_type, bool keep_alive,
                 const HeaderList& extra) {
  out += fmt::format("HTTP/1.1 {} {}\r\nServer: h2o.cpp\r\nContent-Type: {}\r\nConnection: {}\r\n", status,
                     reason_phrase(status), content_type, keep_alive ? "keep-alive" : "close");
  for (const auto& [name, value] : extra) out += fmt::format("{}: {}\r\n", name, value);
}

}  // namespace

std::string http_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                          const HeaderList& extra) {
  std::string out;
  out.reserve(256 + body.size());
  append_head(out, status, content_type, keep_alive, extra);
  out += fmt::format("Content-Length: {}\r\n\r\n", body.size());
  out += body;
  return out;
}

std::string http_stream_head(int status, std::string_view content_type, bool chunked, bool keep_alive,
                             const HeaderList& extra) {
  std::string out;
  append_head(out, status, content_type, keep_alive && chunked, extra);
  if (chunked) out += "Transfer-Encoding: chunked\r\n";
  out += "\r\n";
  return out;
}

std::string http_chunk(std::string_view data) {
  if (data.empty()) return {};
  return fmt::format("{:x}\r\n{}\r\n", data.size(), data);
}

}  // namespace h2o::serve
