// `random`: the paper's random-eviction ablation. The R most recent tokens stay; the rest
// are ranked by a uniform draw. The draw is a hash of (seed, layer, KV head, sequence
// length, position), so it is fresh at every step, independent of slot order and thread
// count, and reproducible by an independent implementation (tests/reference).
#include "kv/policies/policies.h"
#include "kv/random_key.h"

namespace h2o {
namespace {

class RandomPolicy final : public EvictionPolicy {
 public:
  RandomPolicy(int recent, uint64_t seed) : recent_(recent), seed_(seed) {}
  void select_victims(const SlotView& s, const EvictionSite& site, int n_evict,
                      std::vector<int>& victims) const override {
    std::vector<uint8_t> prot(static_cast<size_t>(s.n), 0);
    mark_most_recent(s, recent_, prot);
    std::vector<double> key(static_cast<size_t>(s.n));
    for (int i = 0; i < s.n; ++i) {
      key[static_cast<size_t>(i)] = random_eviction_key(seed_, site.layer, site.kv_head, site.tokens_seen, s.pos[i]);
    }
    select_lowest(s, prot, key, n_evict, victims);
  }

 private:
  int recent_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_random_policy(int recent, uint64_t seed) {
  return std::make_unique<RandomPolicy>(recent, seed);
}

}  // namespace h2o
