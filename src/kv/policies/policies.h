// Factories of the built-in eviction policies, one per file in this folder.
#pragma once

#include <cstdint>
#include <memory>

#include "kv/policy.h"

namespace h2o {

std::unique_ptr<EvictionPolicy> make_full_policy();
std::unique_ptr<EvictionPolicy> make_window_policy();
std::unique_ptr<EvictionPolicy> make_sink_policy(int sinks);
std::unique_ptr<EvictionPolicy> make_h2o_policy(int recent);
std::unique_ptr<EvictionPolicy> make_tova_policy();
std::unique_ptr<EvictionPolicy> make_random_policy(int recent, uint64_t seed);

}  // namespace h2o
