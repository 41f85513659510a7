#include "format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/check.h"
#include "common/text_file.h"
#include "common/unique_fd.h"

namespace h2o {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // O_NONBLOCK so that opening a FIFO by mistake cannot hang; it has no effect on
  // regular files, and anything else is rejected below.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) fail("{}: no such file", path);
    fail("{}: cannot open: {}", path, std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{}: is {}, expected a model file", path, non_regular_file_kind(st.st_mode));
  if (st.st_size < 0) fail("{}: invalid file size", path);
  size_ = static_cast<size_t>(st.st_size);
  // mmap cannot map zero bytes; an empty file is represented as an empty span and the
  // format parsers reject it with their own message.
  if (size_ == 0) return;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) fail("{}: cannot map {} bytes: {}", path, size_, std::strerror(errno));
  data_ = static_cast<const uint8_t*>(p);
}

void MappedFile::release_pages(const uint8_t* p, size_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  // Advice only: a failure leaves the pages resident, which is still correct.
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace h2o
