#include "integration/run_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_paths.h"

namespace h2o::test {
namespace {

long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

std::string slurp_fd(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

CliResult run_cli(const std::vector<std::string>& args, const CliBounds& bounds) {
  // stdout and stderr go to temp files so a large output cannot block the child.
  char out_name[] = "/tmp/h2o_cli_out_XXXXXX";
  char err_name[] = "/tmp/h2o_cli_err_XXXXXX";
  const int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("mkstemp failed");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    std::vector<char*> argv;
    std::string bin = cli_path();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  CliResult r;
  if (bounds.timeout.count() == 0 && bounds.max_rss_kb == 0) {
    waitpid(pid, &status, 0);
  } else {
    const auto deadline = std::chrono::steady_clock::now() + bounds.timeout;
    for (;;) {
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      r.peak_rss_kb = std::max(r.peak_rss_kb, rss_kb(pid));
      if (bounds.max_rss_kb > 0 && r.peak_rss_kb > bounds.max_rss_kb) r.killed = "rss";
      if (bounds.timeout.count() > 0 && std::chrono::steady_clock::now() > deadline) r.killed = "timeout";
      if (!r.killed.empty()) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  lseek(out_fd, 0, SEEK_SET);
  lseek(err_fd, 0, SEEK_SET);
  r.out = slurp_fd(out_fd);
  r.err = slurp_fd(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_name);
  unlink(err_name);
  return r;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace h2o::test
