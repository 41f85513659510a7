// `tova`: Token Omission Via Attention (Oren et al. 2024). Evicts the slots that the
// step's last query row attended to least, summed over the query heads of the group.
#include "kv/policies/policies.h"

namespace h2o {
namespace {

class TovaPolicy final : public EvictionPolicy {
 public:
  ScoreNeed score_need() const override { return ScoreNeed::LastRow; }
  void select_victims(const SlotView& s, const EvictionSite&, int n_evict,
                      std::vector<int>& victims) const override {
    if (n_evict == 1) {
      const int victim = lowest_score_outside_recent(s, s.last_row, 0);
      if (victim >= 0) {
        victims.push_back(victim);
        return;
      }
    }
    std::vector<uint8_t> prot(static_cast<size_t>(s.n), 0);
    std::vector<double> key(s.last_row, s.last_row + s.n);
    select_lowest(s, prot, key, n_evict, victims);
  }
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_tova_policy() { return std::make_unique<TovaPolicy>(); }

}  // namespace h2o
