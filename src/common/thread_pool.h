// A persistent pool of worker threads for data-parallel loops (matrix rows, heads).
// Work is split into contiguous ranges, one per thread, so a given element is always
// computed by the same sequence of operations: results do not depend on the thread count
// (nor on which thread happens to run a range).
//
// Hand-off: the caller publishes a job by bumping an atomic generation counter; idle
// workers poll it for a short while (kSpinNanos) before sleeping in a futex wait
// (std::atomic::wait), so the back-to-back jobs of one forward step start within a
// cache-line transfer instead of a condition-variable wake-up. Each range is claimed with
// one compare-and-swap: worker i claims range i, the caller runs range 0 and then claims
// any range whose worker has not started it yet (asleep, or descheduled on a busy
// machine), so a late worker delays nothing: it finds its range taken and goes back to
// waiting. The caller then waits (poll, then sleep) for ranges still running elsewhere.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace h2o {

class ThreadPool {
 public:
  // n_threads >= 1; the calling thread counts as one of them. Jobs whose `work` is below
  // min_parallel_work run on the calling thread alone.
  explicit ThreadPool(int n_threads, size_t min_parallel_work = kMinParallelWork);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over a partition of [0, n) into at most size() contiguous ranges
  // and waits for all of them. `work` estimates the whole job's cost in multiply-adds: jobs
  // below the pool's min_parallel_work (kMinParallelWork unless given) run on the calling
  // thread alone. If fn throws, the first exception is rethrown here after every range has
  // finished. A call made while the pool is already running a job (from inside fn, or from
  // another thread) runs fn(0, n) on the calling thread: same results, no deadlock.
  void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t work = SIZE_MAX);

  // For independent tasks of uneven cost (a prefill chunk's heads next to decode rows'):
  // calls fn(task, part) once for every task in [0, n), handing the tasks out one at a time
  // in index order to whichever thread is free, so list the costly ones first. `part` is
  // in [0, size()) and no two threads run with the same part at once (index per-thread
  // scratch with it). Which thread runs a task varies from run to run, so a task must
  // write only its own outputs: then the results are the same bits whatever the thread
  // count. `work` and exceptions as for parallel_for.
  void parallel_claim(size_t n, const std::function<void(size_t task, size_t part)>& fn, size_t work = SIZE_MAX);

  static constexpr size_t kMinParallelWork = 1 << 16;
  // How long an idle worker (or the waiting caller) polls before it sleeps.
  static constexpr int64_t kSpinNanos = 50'000;

 private:
  struct alignas(64) Claim {
    std::atomic<uint32_t> generation{0};  // the last job whose range this is was claimed in
  };

  void worker_loop(int index);
  bool try_run(int part, uint32_t generation);  // claims range `part` of that job and runs it

  int n_threads_;
  size_t min_parallel_work_;
  std::vector<std::thread> workers_;
  std::unique_ptr<Claim[]> claims_;  // one per range

  // Written by the caller before the release increment of generation_; read by a worker
  // only after it has claimed a range of that job (the caller waits for that range).
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0;

  alignas(64) std::atomic<uint32_t> generation_{0};  // bumped once per job (and at shutdown)
  alignas(64) std::atomic<uint32_t> remaining_{0};   // ranges of the current job not finished
  alignas(64) std::atomic<bool> busy_{false};         // a job is in flight
  std::atomic<bool> stop_{false};

  std::mutex error_mutex_;
  std::exception_ptr error_;  // first exception thrown by a range of the current job
};

}  // namespace h2o
