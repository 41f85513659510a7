// A heap byte buffer aligned to a cache line (64 bytes), for data that SIMD kernels load
// in whole vectors (the packed weights of format/packed_quant.h). std::vector cannot
// promise more than alignof(max_align_t); this owns one std::aligned_alloc block.
// Buffers of 2 MiB and more are aligned to 2 MiB and ask Linux for transparent huge
// pages: the kernels stream through them once per token, and with 4 KiB pages every page
// costs a TLB miss (measured: Q8_0 decode 30% slower than from the file mapping, which
// the page cache maps with huge pages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace h2o {

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kHugePage = size_t{2} << 20;

  AlignedBuffer() = default;
  // Zero-filled; throws std::bad_alloc when the memory is not there.
  explicit AlignedBuffer(size_t n) : size_(n) {
    if (n == 0) return;
    const size_t align = n >= kHugePage ? kHugePage : kAlign;
    const size_t rounded = (n + align - 1) / align * align;  // aligned_alloc wants a multiple
    void* p = std::aligned_alloc(align, rounded);
    if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (align == kHugePage) (void)::madvise(p, rounded, MADV_HUGEPAGE);  // advice only
#endif
    data_.reset(static_cast<uint8_t*>(p));
    std::uninitialized_fill_n(data_.get(), rounded, uint8_t{0});
  }

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

}  // namespace h2o
