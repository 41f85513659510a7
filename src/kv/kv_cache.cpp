#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"

namespace h2o {

KvCache::KvCache(const AttentionShape& cfg, const KvResolved& kv, int max_step)
    : cfg_(cfg), kv_(kv), policy_(make_policy(kv)), max_step_(std::max(0, max_step)) {
  layers_.resize(static_cast<size_t>(cfg.n_layers));
  update_bytes();
}

KvCache::~KvCache() = default;

void KvCache::reallocate(int new_cap) {
  const size_t hd = static_cast<size_t>(cfg_.head_dim), nkv = static_cast<size_t>(cfg_.n_kv_heads);
  const size_t nc = static_cast<size_t>(new_cap), oc = static_cast<size_t>(cap_);
  for (Layer& L : layers_) {
    std::vector<float> k(nkv * nc * hd), v(nkv * nc * hd), s(nkv * nc);
    std::vector<int32_t> p(nkv * nc);
    const size_t live = static_cast<size_t>(L.n);
    for (size_t h = 0; h < nkv && live > 0; ++h) {
      std::memcpy(&k[h * nc * hd], &L.keys[h * oc * hd], live * hd * sizeof(float));
      std::memcpy(&v[h * nc * hd], &L.values[h * oc * hd], live * hd * sizeof(float));
      std::memcpy(&s[h * nc], &L.score[h * oc], live * sizeof(float));
      std::memcpy(&p[h * nc], &L.pos[h * oc], live * sizeof(int32_t));
    }
    L.keys = std::move(k);
    L.values = std::move(v);
    L.score = std::move(s);
    L.pos = std::move(p);
  }
  cap_ = new_cap;
  const ScoreNeed need = policy_->score_need();
  mass_.assign(need == ScoreNeed::Accumulated ? nkv * nc : 0, 0.0f);
  last_mass_.assign(need == ScoreNeed::LastRow ? nkv * nc : 0, 0.0f);
  update_bytes();
}

namespace {

// Keys + values + positions + scores of `cap` slots per (layer, KV head), plus the per-step
// score scratch ([n_kv_heads][cap]) when the policy reads attention statistics.
size_t cache_bytes(const AttentionShape& cfg, ScoreNeed need, int cap) {
  const size_t c = static_cast<size_t>(cap), nkv = static_cast<size_t>(cfg.n_kv_heads);
  const size_t per_slot = 2 * static_cast<size_t>(cfg.head_dim) * sizeof(float) + sizeof(int32_t) + sizeof(float);
  const size_t scratch = need == ScoreNeed::None ? 0 : nkv * c * sizeof(float);
  return c * static_cast<size_t>(cfg.n_layers) * nkv * per_slot + scratch;
}

}  // namespace

size_t KvCache::bytes_for(const AttentionShape& cfg, const KvResolved& kv, int cap) {
  return cache_bytes(cfg, make_policy(kv)->score_need(), cap);
}

void KvCache::update_bytes() {
  bytes_ = cache_bytes(cfg_, policy_->score_need(), cap_);
  peak_bytes_ = std::max(peak_bytes_, bytes_);
}

void KvCache::shrink_to_step(int max_step) {
  if (kv_.budget <= 0 || max_step <= 0) return;
  const int target = std::min(kv_.budget + max_step, cfg_.context_length);
  if (cap_ <= target) return;
  for (const Layer& L : layers_) {
    if (L.n > target) return;  // cannot happen between steps (n <= B), but never drop slots
  }
  reallocate(target);
}

void KvCache::begin_step(int n_tokens) {
  if (n_tokens <= 0) fail("internal: empty step");
  const int needed = layers_.front().n + n_tokens;
  if (needed <= cap_) return;
  if (kv_.budget > 0) {
    // The largest step (the prefill chunk if known, else the first step, usually the
    // prompt) sets the size once: budget + step, never more than the context holds.
    if (cap_ == 0 && max_step_ >= n_tokens) {
      reallocate(std::min(kv_.budget + max_step_, cfg_.context_length));
      return;
    }
    // Between steps a head holds at most B slots, so later steps up to that size fit.
    reallocate(std::max(needed, std::min(kv_.budget + n_tokens, cfg_.context_length)));
  } else {
    reallocate((needed + kPageSlots - 1) / kPageSlots * kPageSlots);
  }
}

void KvCache::append(int layer, const float* k, const float* v, const int32_t* positions, int n_tokens) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  if (L.n + n_tokens > cap_) fail("internal: KV append beyond capacity (begin_step not called)");
  const size_t hd = static_cast<size_t>(cfg_.head_dim), cap = static_cast<size_t>(cap_);
  const size_t kvd = static_cast<size_t>(cfg_.kv_dim());
  for (int h = 0; h < cfg_.n_kv_heads; ++h) {
    const size_t hb = static_cast<size_t>(h);
    for (int t = 0; t < n_tokens; ++t) {
      const size_t slot = static_cast<size_t>(L.n) + static_cast<size_t>(t);
      const size_t src = static_cast<size_t>(t) * kvd + hb * hd;
      std::memcpy(&L.keys[(hb * cap + slot) * hd], k + src, hd * sizeof(float));
      std::memcpy(&L.values[(hb * cap + slot) * hd], v + src, hd * sizeof(float));
      L.pos[hb * cap + slot] = positions[t];
      L.score[hb * cap + slot] = 0.0f;
    }
  }
  L.n += n_tokens;
  std::fill(mass_.begin(), mass_.end(), 0.0f);
  std::fill(last_mass_.begin(), last_mass_.end(), 0.0f);
}

KvLayerView KvCache::layer_view(int layer) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  KvLayerView v;
  v.keys = L.keys.data();
  v.values = L.values.data();
  v.pos = L.pos.data();
  v.cap = static_cast<size_t>(cap_);
  v.n = L.n;
  v.mass = mass_.empty() ? nullptr : mass_.data();
  v.last_row_mass = last_mass_.empty() ? nullptr : last_mass_.data();
  return v;
}

void KvCache::finish_step(int layer, int64_t tokens_seen) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  const size_t cap = static_cast<size_t>(cap_);
  if (!mass_.empty()) {
    for (size_t h = 0; h < static_cast<size_t>(cfg_.n_kv_heads); ++h) {
      for (size_t s = 0; s < static_cast<size_t>(L.n); ++s) L.score[h * cap + s] += mass_[h * cap + s];
    }
  }
  if (kv_.budget <= 0 || L.n <= kv_.budget) return;
  const int n_evict = L.n - kv_.budget;
  for (int h = 0; h < cfg_.n_kv_heads; ++h) evict_head(L, layer, h, n_evict, tokens_seen);
  L.n = kv_.budget;
}

void KvCache::evict_head(Layer& L, int layer_index, int kv_head, int n_evict, int64_t tokens_seen) {
  const size_t cap = static_cast<size_t>(cap_), hd = static_cast<size_t>(cfg_.head_dim);
  const size_t base = static_cast<size_t>(kv_head) * cap;
  SlotView view;
  view.pos = &L.pos[base];
  view.score = &L.score[base];
  view.last_row = last_mass_.empty() ? nullptr : &last_mass_[base];
  view.n = L.n;
  victims_.clear();
  policy_->select_victims(view, EvictionSite{layer_index, kv_head, tokens_seen}, n_evict, victims_);
  if (static_cast<int>(victims_.size()) != n_evict)
    fail("internal: policy chose {} victims, expected {}", victims_.size(), n_evict);
  // Fill each hole with the last live slot; descending order keeps the moved slot live.
  std::sort(victims_.begin(), victims_.end(), std::greater<>());
  int n = L.n;
  for (int victim : victims_) {
    const int last = n - 1;
    if (victim != last) {
      const size_t dst = base + static_cast<size_t>(victim), src = base + static_cast<size_t>(last);
      std::memcpy(&L.keys[dst * hd], &L.keys[src * hd], hd * sizeof(float));
      std::memcpy(&L.values[dst * hd], &L.values[src * hd], hd * sizeof(float));
      L.pos[dst] = L.pos[src];
      L.score[dst] = L.score[src];
      if (!last_mass_.empty()) last_mass_[dst] = last_mass_[src];
    }
    --n;
  }
}

void KvCache::clear() {
  for (Layer& L : layers_) L.n = 0;
}

const int32_t* KvCache::positions(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)].pos[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_)];
}
const float* KvCache::scores(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)].score[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_)];
}
const float* KvCache::keys(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)]
              .keys[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_) * static_cast<size_t>(cfg_.head_dim)];
}
const float* KvCache::values(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)]
              .values[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_) * static_cast<size_t>(cfg_.head_dim)];
}

}  // namespace h2o
