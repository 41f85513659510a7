// A STREAM-like memory-bandwidth probe (after McCalpin's STREAM: copy, scale, add, triad
// over three arrays of doubles far larger than the caches). Decoding one token reads every
// weight once, so the triad figure is the ceiling a memory-bound decode can approach.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace h2o {

struct BandwidthOptions {
  int threads = 1;
  size_t total_bytes = size_t{256} << 20;  // all three arrays together
  int reps = 5;                            // best of
};

struct BandwidthKernel {
  std::string name;    // copy, scale, add, triad
  uint64_t bytes = 0;  // bytes moved per pass (reads + writes, as STREAM counts them)
  double best_seconds = 0.0;
  double gb_per_s() const { return best_seconds > 0 ? static_cast<double>(bytes) / best_seconds / 1e9 : 0.0; }
};

struct BandwidthResult {
  int threads = 1;
  size_t array_elems = 0;  // doubles per array
  int reps = 0;
  std::vector<BandwidthKernel> kernels;  // copy, scale, add, triad
  double triad_gb_per_s() const;
};

// Throws h2o::Error for threads < 1, reps < 1 or total_bytes below 3 MiB. The figures mean
// memory bandwidth only when total_bytes is well above the last-level cache (256 MiB is).
BandwidthResult measure_bandwidth(const BandwidthOptions& opts);

std::string bandwidth_to_text(const BandwidthResult& r);
nlohmann::json bandwidth_to_json(const BandwidthResult& r);

}  // namespace h2o
