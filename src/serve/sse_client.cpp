#include "serve/sse_client.h"

#include <chrono>

namespace h2o::serve {

std::vector<std::string> SseParser::feed(std::string_view bytes) {
  buf_.append(bytes);
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = buf_.find("\n\n", start);
    if (end == std::string::npos) break;
    std::string data;
    bool has_data = false;
    size_t line_start = start;
    while (line_start < end) {
      size_t line_end = buf_.find('\n', line_start);
      if (line_end == std::string::npos || line_end > end) line_end = end;
      std::string_view line(buf_.data() + line_start, line_end - line_start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.rfind("data:", 0) == 0) {
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (has_data) data += '\n';
        data.append(line);
        has_data = true;
      }
      line_start = line_end + 1;
    }
    if (has_data) out.push_back(std::move(data));
    start = end + 2;
  }
  buf_.erase(0, start);
  return out;
}

std::string StreamResult::text() const {
  std::string t;
  for (const auto& e : events) {
    if (!e.contains("choices") || e["choices"].empty()) continue;
    const auto& c = e["choices"][0];
    if (c.contains("text") && c["text"].is_string()) t += c["text"].get<std::string>();
    if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
      t += c["delta"]["content"].get<std::string>();
  }
  return t;
}

std::string StreamResult::finish_reason() const {
  std::string r;
  for (const auto& e : events) {
    if (e.contains("choices") && !e["choices"].empty() && e["choices"][0]["finish_reason"].is_string())
      r = e["choices"][0]["finish_reason"].get<std::string>();
  }
  return r;
}

nlohmann::json StreamResult::usage() const {
  nlohmann::json u;
  for (const auto& e : events) {
    if (e.contains("usage") && e["usage"].is_object()) u = e["usage"];
  }
  return u;
}

StreamResult post_stream(httplib::Client& cli, const std::string& path, const std::string& body,
                         const std::string& api_key) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  StreamResult r;
  SseParser parser;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  if (!api_key.empty()) req.set_header("Authorization", "Bearer " + api_key);
  req.response_handler = [&r](const httplib::Response& res) {
    r.status = res.status;
    r.content_type = res.get_header_value("Content-Type");
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    r.body.append(data, len);
    if (r.content_type.rfind("text/event-stream", 0) != 0) return true;
    for (std::string& ev : parser.feed(std::string_view(data, len))) {
      if (ev == "[DONE]") {
        r.done = true;
        continue;
      }
      auto j = nlohmann::json::parse(ev, nullptr, false);
      if (r.ttft_s < 0 && j.is_object() && j.contains("choices") && !j["choices"].empty()) {
        const auto& c = j["choices"][0];
        const bool has_text = (c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty()) ||
                              (c.contains("delta") && c["delta"].contains("content"));
        if (has_text) r.ttft_s = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      r.events.push_back(std::move(j));
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!cli.send(req, res, err)) {
    r.status = 0;
    r.transport_error = httplib::to_string(err);
  } else {
    r.status = res.status;
  }
  r.total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace h2o::serve
