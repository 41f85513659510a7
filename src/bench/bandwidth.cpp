#include "bench/bandwidth.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "common/check.h"
#include "common/thread_pool.h"

namespace h2o {
namespace {

constexpr double kScalar = 3.0;  // STREAM's q

// Runs body(begin, end) over [0, n) on every thread of the pool (forced parallel) and
// returns the wall time.
double timed_pass(ThreadPool& pool, size_t n, const std::function<void(size_t, size_t)>& body) {
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(n, body, SIZE_MAX);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double BandwidthResult::triad_gb_per_s() const {
  for (const auto& k : kernels) {
    if (k.name == "triad") return k.gb_per_s();
  }
  return 0.0;
}

BandwidthResult measure_bandwidth(const BandwidthOptions& opts) {
  if (opts.threads < 1) fail("bandwidth: threads must be at least 1, got {}", opts.threads);
  if (opts.reps < 1) fail("bandwidth: repetitions must be at least 1, got {}", opts.reps);
  if (opts.total_bytes < (size_t{3} << 20))
    fail("bandwidth: {} bytes is too small for the probe (at least 3 MiB)", opts.total_bytes);
  const size_t n = opts.total_bytes / (3 * sizeof(double));
  // Uninitialised on purpose: the first touch below happens on the threads that later
  // stream each range, so on NUMA machines the pages land near them (as STREAM does).
  auto a = std::make_unique_for_overwrite<double[]>(n);
  auto b = std::make_unique_for_overwrite<double[]>(n);
  auto c = std::make_unique_for_overwrite<double[]>(n);
  double* A = a.get();
  double* B = b.get();
  double* C = c.get();
  ThreadPool pool(opts.threads);
  pool.parallel_for(
      n,
      [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) {
          A[i] = 1.0;
          B[i] = 2.0;
          C[i] = 0.0;
        }
      },
      SIZE_MAX);

  const uint64_t d = sizeof(double) * n;
  BandwidthResult res;
  res.threads = opts.threads;
  res.array_elems = n;
  res.reps = opts.reps;
  res.kernels = {{"copy", 2 * d, 0.0}, {"scale", 2 * d, 0.0}, {"add", 3 * d, 0.0}, {"triad", 3 * d, 0.0}};
  const std::function<void(size_t, size_t)> bodies[4] = {
      [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) C[i] = A[i];
      },
      [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) B[i] = kScalar * C[i];
      },
      [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) C[i] = A[i] + B[i];
      },
      [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) A[i] = B[i] + kScalar * C[i];
      },
  };
  for (auto& k : res.kernels) k.best_seconds = std::numeric_limits<double>::infinity();
  for (int r = 0; r < opts.reps; ++r) {
    for (size_t k = 0; k < 4; ++k) {
      const double s = timed_pass(pool, n, bodies[k]);
      if (s < res.kernels[k].best_seconds) res.kernels[k].best_seconds = s;
    }
  }
  // STREAM's check: every element follows the same recurrence from (1, 2, 0).
  double ea = 1.0, eb = 2.0, ec = 0.0;
  for (int r = 0; r < opts.reps; ++r) {
    ec = ea;
    eb = kScalar * ec;
    ec = ea + eb;
    ea = eb + kScalar * ec;
  }
  for (size_t i : {size_t{0}, n / 2, n - 1}) {
    if (std::abs(A[i] - ea) > 1e-9 * ea || std::abs(B[i] - eb) > 1e-9 * eb || std::abs(C[i] - ec) > 1e-9 * ec)
      fail("bandwidth: the probe's arrays hold wrong values (a {} b {} c {} at {})", A[i], B[i], C[i], i);
  }
  return res;
}

std::string bandwidth_to_text(const BandwidthResult& r) {
  std::string s =
      fmt::format("memory bandwidth: STREAM-like, 3 arrays of {:.1f} MiB (doubles), {} threads, best of {}\n",
                  static_cast<double>(r.array_elems * sizeof(double)) / (1024.0 * 1024.0), r.threads, r.reps);
  s += fmt::format("  {:<8} {:>10} {:>10}\n", "kernel", "GB/s", "best ms");
  for (const auto& k : r.kernels)
    s += fmt::format("  {:<8} {:>10.2f} {:>10.3f}\n", k.name, k.gb_per_s(), k.best_seconds * 1e3);
  return s;
}

nlohmann::json bandwidth_to_json(const BandwidthResult& r) {
  nlohmann::json kernels = nlohmann::json::object();
  for (const auto& k : r.kernels) {
    kernels[k.name] = {{"gb_per_s", k.gb_per_s()}, {"best_ms", k.best_seconds * 1e3}, {"bytes_per_pass", k.bytes}};
  }
  return {{"threads", r.threads},
          {"array_bytes", r.array_elems * sizeof(double)},
          {"reps", r.reps},
          {"kernels", kernels},
          {"triad_gb_per_s", r.triad_gb_per_s()}};
}

}  // namespace h2o
