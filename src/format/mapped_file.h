// A read-only memory mapping of a whole file. Model weights are used in place from
// the mapping (never copied), so loading a model costs no heap memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace h2o {

class MappedFile {
 public:
  // Throws h2o::Error naming the path for a missing, unreadable or non-regular file.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Tells the kernel that the mapped bytes [p, p + n) are not needed now: their whole
  // pages leave memory (and the RSS) and are read from the file again if touched. For
  // weights that were copied elsewhere (packed) at load.
  static void release_pages(const uint8_t* p, size_t n);

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace h2o
