#include "common/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "common/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace h2o {
namespace {

// Range [begin, end) of part `i` of `parts` over n elements.
std::pair<size_t, size_t> part_range(size_t n, size_t parts, size_t i) {
  const size_t base = n / parts, extra = n % parts;
  const size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Waits until `a` holds a value other than `old` and returns it: polls for up to
// ThreadPool::kSpinNanos, then sleeps in std::atomic::wait (a futex on Linux).
uint32_t wait_for_change(const std::atomic<uint32_t>& a, uint32_t old) {
  uint32_t v = a.load(std::memory_order_acquire);
  if (v != old) return v;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ThreadPool::kSpinNanos);
  do {
    for (int i = 0; i < 32; ++i) {
      cpu_relax();
      v = a.load(std::memory_order_acquire);
      if (v != old) return v;
    }
  } while (std::chrono::steady_clock::now() < deadline);
  for (;;) {
    a.wait(old, std::memory_order_acquire);
    v = a.load(std::memory_order_acquire);
    if (v != old) return v;
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, size_t min_parallel_work)
    : n_threads_(n_threads), min_parallel_work_(min_parallel_work) {
  if (n_threads < 1 || n_threads > 1024) fail("thread count must be between 1 and 1024, got {}", n_threads);
  claims_ = std::make_unique<Claim[]>(static_cast<size_t>(n_threads));
  workers_.reserve(static_cast<size_t>(n_threads - 1));
  try {
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (...) {
    // Thread creation failed: stop the ones already running before the members go away.
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

// Every range of job g is claimed exactly once before job g + 1 is published, so an
// unclaimed range of the current job g holds g - 1. A worker that woke for an older job
// fails the exchange (the range holds g - 1 only while g is current), so it never runs a
// range of a job it did not see published.
bool ThreadPool::try_run(int part, uint32_t generation) {
  uint32_t expected = generation - 1;
  if (!claims_[static_cast<size_t>(part)].generation.compare_exchange_strong(
          expected, generation, std::memory_order_acquire, std::memory_order_relaxed))
    return false;
  const auto [b, e] = part_range(job_n_, static_cast<size_t>(n_threads_), static_cast<size_t>(part));
  if (b < e) {
    try {
      (*job_)(b, e);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) remaining_.notify_one();
  return true;
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t work) {
  if (n == 0) return;
  if (n_threads_ == 1 || n == 1 || work < min_parallel_work_) {
    fn(0, n);
    return;
  }
  // One job at a time: a nested or concurrent call runs serially on its own thread.
  if (busy_.exchange(true, std::memory_order_acquire)) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  remaining_.store(static_cast<uint32_t>(n_threads_), std::memory_order_relaxed);
  const uint32_t g = generation_.fetch_add(1, std::memory_order_release) + 1;
  generation_.notify_all();  // no system call while every worker is still polling

  // Range 0, then whatever no worker has started yet.
  for (int part = 0; part < n_threads_; ++part) try_run(part, g);
  for (uint32_t left = remaining_.load(std::memory_order_acquire); left != 0;) left = wait_for_change(remaining_, left);

  std::exception_ptr error;
  {
    std::lock_guard lock(error_mutex_);
    error.swap(error_);
  }
  job_ = nullptr;
  busy_.store(false, std::memory_order_release);
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_claim(size_t n, const std::function<void(size_t, size_t)>& fn, size_t work) {
  if (n == 0) return;
  if (n == 1) {
    fn(0, 0);
    return;
  }
  std::atomic<size_t> next{0};
  // One range per thread; a range's thread claims tasks until none is left. Run serially
  // (one range [0, size()), or a nested call), the caller claims them all as part 0.
  parallel_for(
      static_cast<size_t>(n_threads_),
      [&](size_t part, size_t) {
        for (size_t task = next.fetch_add(1, std::memory_order_relaxed); task < n;
             task = next.fetch_add(1, std::memory_order_relaxed))
          fn(task, part);
      },
      work);
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;  // the constructor has not returned yet: no job was published
  for (;;) {
    seen = wait_for_change(generation_, seen);
    if (stop_.load(std::memory_order_relaxed)) return;
    // Own range first, then any other one not started yet.
    if (!try_run(index, seen)) continue;
    for (int k = 1; k < n_threads_; ++k) {
      const int part = (index + k) % n_threads_;
      if (part != 0) try_run(part, seen);
    }
  }
}

}  // namespace h2o
