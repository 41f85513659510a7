// A persistent pool of worker threads for data-parallel loops (matrix rows, heads).
// Work is split into contiguous ranges, one per thread, so a given element is always
// computed by the same sequence of operations: results do not depend on the thread count.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace h2o {

class ThreadPool {
 public:
  // n_threads >= 1; the calling thread counts as one of them.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over a partition of [0, n) into at most size() ranges and waits.
  // `work` estimates the whole job's cost in multiply-adds: waking the workers costs tens
  // of microseconds, so jobs below kMinParallelWork run on the calling thread alone.
  void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t work = SIZE_MAX);

  static constexpr size_t kMinParallelWork = 1 << 16;

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0;
  unsigned generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace h2o
