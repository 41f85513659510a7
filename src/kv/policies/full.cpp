// `full`: never evicts; the baseline. The cache never asks it (its budget is unbounded).
#include "common/check.h"
#include "kv/policies/policies.h"

namespace h2o {
namespace {

class FullPolicy final : public EvictionPolicy {
 public:
  void select_victims(const SlotView&, const EvictionSite&, int n_evict, std::vector<int>&) const override {
    if (n_evict > 0) fail("internal: the full policy was asked to evict");
  }
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_full_policy() { return std::make_unique<FullPolicy>(); }

}  // namespace h2o
