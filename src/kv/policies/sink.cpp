// `sink`: StreamingLLM. The S lowest positions (attention sinks) stay; the rest is a
// window of the most recent tokens.
#include "kv/policies/policies.h"

namespace h2o {
namespace {

class SinkPolicy final : public EvictionPolicy {
 public:
  explicit SinkPolicy(int sinks) : sinks_(sinks) {}
  void select_victims(const SlotView& s, const EvictionSite&, int n_evict,
                      std::vector<int>& victims) const override {
    std::vector<uint8_t> prot(static_cast<size_t>(s.n), 0);
    mark_oldest(s, sinks_, prot);
    std::vector<double> key(s.pos, s.pos + s.n);
    select_lowest(s, prot, key, n_evict, victims);
  }

 private:
  int sinks_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_sink_policy(int sinks) { return std::make_unique<SinkPolicy>(sinks); }

}  // namespace h2o
