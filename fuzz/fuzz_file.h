// Fuzz inputs for readers that take a path (Model::load, the llama2.c readers): the bytes
// go into an anonymous in-memory file (memfd) and are opened as /proc/self/fd/N, so each
// run is a real regular file (mmap, fstat, the non-regular-file checks) and no disk is
// touched.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

namespace h2o::fuzz {

class MemFile {
 public:
  explicit MemFile(std::span<const uint8_t> bytes) {
    fd_ = memfd_create("h2o-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
      if (n <= 0) std::abort();
      off += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace h2o::fuzz
