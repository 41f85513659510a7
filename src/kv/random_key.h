// The uniform draw of the `random` policy: a SplitMix64 hash of the eviction site and the
// token position, mapped to [0, 1). Part of the policy's contract (tests re-derive it).
#pragma once

#include <cstdint>

namespace h2o {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline double random_eviction_key(uint64_t seed, int layer, int kv_head, int64_t tokens_seen, int32_t pos) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(layer));
  h = splitmix64(h ^ static_cast<uint64_t>(kv_head));
  h = splitmix64(h ^ static_cast<uint64_t>(tokens_seen));
  h = splitmix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(pos)));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

}  // namespace h2o
