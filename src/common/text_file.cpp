#include "common/text_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/check.h"
#include "common/unique_fd.h"

namespace h2o {
std::string_view non_regular_file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

std::string read_text_file(const std::string& path, std::string_view what, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) fail("{}: cannot open {}: {}", path, what, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail("{}: cannot stat {}: {}", path, what, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{}: is {}, not a {}", path, non_regular_file_kind(st.st_mode), what);
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max_bytes)
    fail("{}: the {} is {} bytes, more than the limit of {} bytes", path, what, st.st_size, max_bytes);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  // Reads to the end rather than to st_size: a file that grows while being read is read
  // on, up to the cap.
  for (;;) {
    if (got == data.size()) {
      if (data.size() >= max_bytes) {
        char probe = 0;
        const ssize_t n = ::read(fd.get(), &probe, 1);
        if (n == 0) break;
        if (n > 0) fail("{}: the {} grew past the limit of {} bytes while being read", path, what, max_bytes);
        if (errno == EINTR) continue;
        fail("{}: read error: {}", path, std::strerror(errno));
      }
      data.resize(std::min(max_bytes, std::max<size_t>(data.size() * 2, 4096)));
    }
    const ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{}: read error: {}", path, std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

}  // namespace h2o
