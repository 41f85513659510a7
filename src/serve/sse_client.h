// Client side of the server's streams, for tests and the load generator
// (bench/serve_load/): an incremental server-sent-events parser and a POST that reads a
// stream chunk by chunk with cpp-httplib's client, timing the first token.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace h2o::serve {

// Bytes in, the data of each completed event out ("[DONE]" included). Comment lines
// (": ping") and fields other than data are skipped; multi-line data joins with '\n'.
class SseParser {
 public:
  std::vector<std::string> feed(std::string_view bytes);

 private:
  std::string buf_;
};

struct StreamResult {
  int status = 0;               // HTTP status; 0 if the request failed
  std::string transport_error;  // httplib's error name when status is 0
  std::string content_type;
  std::string body;                    // the raw body (all of it, also for errors)
  std::vector<nlohmann::json> events;  // parsed data payloads, [DONE] excluded
  bool done = false;                   // [DONE] arrived
  double ttft_s = -1.0;                // until the first event with text
  double total_s = 0.0;

  // Concatenated choices[0].text (completions) or choices[0].delta.content (chat).
  std::string text() const;
  // finish_reason of the last choice that has one ("" if none).
  std::string finish_reason() const;
  // The last event with a "usage" object (null if none).
  nlohmann::json usage() const;
};

// POSTs a JSON body and collects the response as it arrives. `api_key` adds a Bearer header.
StreamResult post_stream(httplib::Client& cli, const std::string& path, const std::string& body,
                         const std::string& api_key = {});

}  // namespace h2o::serve
