// Test harness for `h2o serve`: starts the real binary on a free loopback port (--port 0;
// the port is read from its "listening on http://127.0.0.1:PORT" line), waits for
// /health, and stops it with a signal, reporting how it exited. Also raw-socket helpers
// for hostile clients and a /metrics reader.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"

namespace h2o::test {

class ServeProcess {
 public:
  // Starts `h2o serve -m MODEL --port 0 --threads 1 EXTRA...`; fails the test if it does
  // not come up within 60 s.
  explicit ServeProcess(std::vector<std::string> extra = {}, const std::string& model = "stories260K-f32.gguf") {
    char name[] = "/tmp/h2o_serve_err_XXXXXX";
    const int err_fd = mkstemp(name);
    if (err_fd < 0) throw std::runtime_error("mkstemp failed");
    err_path_ = name;
    std::vector<std::string> args = {cli_path(), "serve", "-m", model_path(model), "--port", "0", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(err_fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(err_fd);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string err = stderr_text();
      if (std::regex_search(err, m, listening)) {
        port_ = std::stoi(m[1]);
        break;
      }
      if (waitpid(pid_, &status_, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "h2o serve exited at start: " << err;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    while (port_ > 0 && std::chrono::steady_clock::now() < deadline) {
      auto r = client().Get("/health");
      if (r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "h2o serve did not become healthy: " << stderr_text();
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
    unlink(err_path_.c_str());
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  bool ok() const { return pid_ > 0 && port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  httplib::Client client(int read_timeout_s = 60) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(read_timeout_s, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }

  std::string stderr_text() const {
    std::ifstream in(err_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code (128 + signal
  // if killed by one, -1 if it had to be killed after the timeout).
  int stop(int sig = SIGTERM, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    return -1;
  }

  // VmRSS of the server in KiB (0 if unreadable).
  long rss_kb() const { return proc_status_field("VmRSS:"); }
  // Threads of the server process (0 if unreadable).
  long threads() const { return proc_status_field("Threads:"); }

  // The value of one sample line of /metrics ("name" or "name{labels}"); 0 if absent.
  double metric(const std::string& sample, const std::string& api_key = {}) const {
    auto c = client();
    httplib::Headers h;
    if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
    auto r = c.Get("/metrics", h);
    if (!r || r->status != 200) {
      ADD_FAILURE() << "GET /metrics failed";
      return 0;
    }
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);) {
      if (line.size() > sample.size() && line.compare(0, sample.size(), sample) == 0 && line[sample.size()] == ' ')
        return std::stod(line.substr(sample.size() + 1));
    }
    return 0;
  }

 private:
  long proc_status_field(const std::string& name) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(name, 0) == 0) return std::stol(line.substr(name.size()));
    }
    return 0;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = 0;
  std::string err_path_;
};

// A raw TCP connection to the server, for clients that misbehave. `from` binds the client
// side to another loopback address (127.0.0.0/8 all loops back), so one test can play
// several client addresses.
class RawConnection {
 public:
  explicit RawConnection(int port, const char* from = nullptr) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (from != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      inet_pton(AF_INET, from, &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) ADD_FAILURE() << "bind to " << from;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE() << "connect failed";
  }
  ~RawConnection() { close_now(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  // Reads until the peer closes, `limit` bytes arrive, or `timeout` passes.
  std::string read_until_close(std::chrono::milliseconds timeout, size_t limit = 1 << 20) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (out.size() < limit) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_by_peer_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  bool closed_by_peer() const { return closed_by_peer_; }
  int fd() const { return fd_; }
  void close_now() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool closed_by_peer_ = false;
};

// "POST path HTTP/1.1" with a JSON content type and the given body (Content-Length is the
// body's size unless `content_length` says otherwise).
inline std::string raw_post(const std::string& path, const std::string& body, long content_length = -1) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(content_length >= 0 ? content_length : static_cast<long>(body.size())) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// Status code of a raw HTTP response ("HTTP/1.1 400 ..."), 0 if none.
inline int raw_status(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.c_str() + 9);
}

}  // namespace h2o::test

namespace h2o::test {

// One response cut from raw bytes that hold several in a row (Content-Length bodies).
struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
};

// Splits `bytes` into complete responses with Content-Length bodies, in order; stops at
// the first incomplete or unparsable one.
inline std::vector<RawResponse> split_responses(const std::string& bytes) {
  std::vector<RawResponse> out;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t end = bytes.find("\r\n\r\n", at);
    if (end == std::string::npos) break;
    RawResponse r;
    r.head = bytes.substr(at, end + 4 - at);
    r.status = raw_status(r.head);
    const size_t cl = r.head.find("Content-Length: ");
    if (cl == std::string::npos) break;
    const size_t n = std::stoul(r.head.substr(cl + 16));
    if (end + 4 + n > bytes.size()) break;
    r.body = bytes.substr(end + 4, n);
    out.push_back(std::move(r));
    at = end + 4 + n;
  }
  return out;
}

// GET `path` over a fresh raw connection from `from`; returns the status (0 if none came
// within `timeout`) and the time it took.
inline std::pair<int, std::chrono::duration<double>> timed_get(int port, const std::string& path,
                                                               std::chrono::milliseconds timeout,
                                                               const char* from = nullptr) {
  const auto t0 = std::chrono::steady_clock::now();
  RawConnection conn(port, from);
  conn.send_all("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  const std::string resp = conn.read_until_close(timeout);
  return {raw_status(resp), std::chrono::steady_clock::now() - t0};
}

}  // namespace h2o::test
