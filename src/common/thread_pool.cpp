#include "common/thread_pool.h"

#include <algorithm>

#include "common/check.h"

namespace h2o {
namespace {

// Range [begin, end) of part `i` of `parts` over n elements.
std::pair<size_t, size_t> part_range(size_t n, size_t parts, size_t i) {
  const size_t base = n / parts, extra = n % parts;
  const size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1 || n_threads > 1024) fail("thread count must be between 1 and 1024, got {}", n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t work) {
  if (n == 0) return;
  if (n_threads_ == 1 || n == 1 || work < kMinParallelWork) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  const auto [b, e] = part_range(n, static_cast<size_t>(n_threads_), 0);
  if (b < e) fn(b, e);
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  unsigned seen = 0;
  for (;;) {
    const std::function<void(size_t, size_t)>* job = nullptr;
    size_t n = 0;
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
    }
    const auto [b, e] = part_range(n, static_cast<size_t>(n_threads_), static_cast<size_t>(index));
    if (b < e) (*job)(b, e);
    {
      std::lock_guard lock(mutex_);
      --pending_;
    }
    done_cv_.notify_one();
  }
}

}  // namespace h2o
