// `window`: keeps the B most recent tokens (the paper's "Local" baseline).
#include "kv/policies/policies.h"

namespace h2o {
namespace {

class WindowPolicy final : public EvictionPolicy {
 public:
  void select_victims(const SlotView& s, const EvictionSite&, int n_evict,
                      std::vector<int>& victims) const override {
    std::vector<uint8_t> prot(static_cast<size_t>(s.n), 0);
    std::vector<double> key(s.pos, s.pos + s.n);  // oldest first
    select_lowest(s, prot, key, n_evict, victims);
  }
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_window_policy() { return std::make_unique<WindowPolicy>(); }

}  // namespace h2o
