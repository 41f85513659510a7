// `h2o`: Heavy-Hitter Oracle (Zhang et al. 2023, Algorithm 1). The R most recent tokens
// stay; among the others, the lowest accumulated attention score is evicted first.
#include "kv/policies/policies.h"

namespace h2o {
namespace {

class H2oPolicy final : public EvictionPolicy {
 public:
  explicit H2oPolicy(int recent) : recent_(recent) {}
  ScoreNeed score_need() const override { return ScoreNeed::Accumulated; }
  void select_victims(const SlotView& s, const EvictionSite&, int n_evict,
                      std::vector<int>& victims) const override {
    if (n_evict == 1) {
      const int victim = lowest_score_outside_recent(s, s.score, recent_);
      if (victim >= 0) {
        victims.push_back(victim);
        return;
      }
    }
    std::vector<uint8_t> prot(static_cast<size_t>(s.n), 0);
    mark_most_recent(s, recent_, prot);
    std::vector<double> key(s.score, s.score + s.n);
    select_lowest(s, prot, key, n_evict, victims);
  }

 private:
  int recent_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_h2o_policy(int recent) { return std::make_unique<H2oPolicy>(recent); }

}  // namespace h2o
