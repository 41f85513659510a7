// The persistent thread pool: every index is visited exactly once in contiguous ranges,
// exceptions reach the caller, nested and concurrent calls do not deadlock, and many
// back-to-back jobs (the forward pass's pattern) all complete.
#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/error.h"

namespace h2o {
namespace {

TEST(ThreadPool, VisitsEveryIndexOnceForAnyThreadCount) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t n : {1u, 2u, 7u, 64u, 1000u}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](size_t b, size_t e) {
        ASSERT_LT(b, e);
        for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << threads << " threads, n " << n << ", i " << i;
    }
  }
}

TEST(ThreadPool, ClaimRunsEveryTaskOnceWithNoPartShared) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t n : {1u, 2u, 7u, 64u, 1000u}) {
      std::vector<std::atomic<int>> hits(n);
      // A part is one thread's at a time: its counter is never entered twice at once.
      std::vector<std::atomic<int>> inside(static_cast<size_t>(threads));
      std::atomic<bool> shared{false};
      pool.parallel_claim(n, [&](size_t task, size_t part) {
        ASSERT_LT(part, static_cast<size_t>(threads));
        if (inside[part].fetch_add(1) != 0) shared = true;
        hits[task].fetch_add(1);
        // Uneven costs, as the attention's tasks have.
        if (task % 5 == 0) std::this_thread::yield();
        inside[part].fetch_sub(1);
      });
      EXPECT_FALSE(shared.load());
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << threads << " threads, n " << n << ", i " << i;
    }
  }
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_claim(9,
                                   [](size_t task, size_t) {
                                     if (task == 4) throw Error("task failed");
                                   }),
               Error);
}

TEST(ThreadPool, ManyBackToBackJobsComplete) {
  ThreadPool pool(2);
  std::atomic<uint64_t> sum{0};
  for (int job = 0; job < 20000; ++job) {
    pool.parallel_for(16, [&](size_t b, size_t e) { sum.fetch_add(e - b); });
  }
  EXPECT_EQ(sum.load(), 20000u * 16u);
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(30,
                                 [](size_t b, size_t) {
                                   if (b > 0) throw Error("range failed");
                                 }),
               Error);
  std::atomic<int> count{0};
  pool.parallel_for(30, [&](size_t b, size_t e) { count.fetch_add(static_cast<int>(e - b)); });
  EXPECT_EQ(count.load(), 30);
}

TEST(ThreadPool, NestedAndConcurrentCallsRunWithoutDeadlock) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      pool.parallel_for(5, [&](size_t ib, size_t ie) { inner.fetch_add(static_cast<int>(ie - ib)); });
  });
  EXPECT_EQ(inner.load(), 20);
  std::atomic<int> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int j = 0; j < 500; ++j)
        pool.parallel_for(8, [&](size_t b, size_t e) { total.fetch_add(static_cast<int>(e - b)); });
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4 * 500 * 8);
}

TEST(ThreadPool, RejectsBadThreadCounts) {
  EXPECT_THROW(ThreadPool(0), Error);
  EXPECT_THROW(ThreadPool(5000), Error);
}

}  // namespace
}  // namespace h2o
