#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "kernels/kv_kernels.h"
#include "kernels/kv_reference.h"

namespace h2o {

size_t kv_row_bytes(KvType type, int head_dim) {
  const size_t hd = static_cast<size_t>(head_dim);
  switch (type) {
    case KvType::F32:
      return hd * sizeof(float);
    case KvType::F16:
      return hd * sizeof(uint16_t);
    case KvType::Q8:
      return hd;
  }
  return hd * sizeof(float);
}

KvCache::KvCache(const AttentionShape& cfg, const KvResolved& kv, int max_step)
    : cfg_(cfg),
      kv_(kv),
      policy_(make_policy(kv)),
      max_step_(std::max(0, max_step)),
      row_bytes_(kv_row_bytes(kv.type, cfg.head_dim)),
      encode_q8_(active_kv_kernels().encode_row_q8) {
  layers_.resize(static_cast<size_t>(cfg.n_layers));
  update_bytes();
}

KvCache::~KvCache() = default;

namespace {

// Re-lays out `a` from [heads][old_cap][per_slot] to [heads][new_cap][per_slot] in place,
// keeping each head's first `live` slots (the rest of the new layout is unspecified: a slot
// is written when it is appended). Growing resizes the vector, which reallocates only when
// its capacity is exceeded, geometrically (libstdc++ doubles), then moves the heads from
// the last down; so a `full` cache growing page by page copies O(n) bytes in all instead
// of O(n^2), and does not fault in a fresh allocation per page (the page-by-page
// reallocation of every layer took most of a 2,048-token `full` run). The spare capacity
// is never written, so it is not resident. Shrinking moves the heads from the first up,
// then returns the memory.
template <class T>
void relayout_heads(std::vector<T>& a, size_t heads, size_t old_cap, size_t new_cap, size_t per_slot, size_t live) {
  const size_t row = per_slot * sizeof(T);
  if (new_cap >= old_cap) {
    a.resize(heads * new_cap * per_slot);
    for (size_t h = heads; h-- > 1 && live > 0;) {
      std::memmove(a.data() + h * new_cap * per_slot, a.data() + h * old_cap * per_slot, live * row);
    }
  } else {
    for (size_t h = 1; h < heads && live > 0; ++h) {
      std::memmove(a.data() + h * new_cap * per_slot, a.data() + h * old_cap * per_slot, live * row);
    }
    a.resize(heads * new_cap * per_slot);
    a.shrink_to_fit();
  }
}

}  // namespace

void KvCache::reallocate(int new_cap) {
  const size_t rb = row_bytes_, nkv = static_cast<size_t>(cfg_.n_kv_heads);
  const size_t nc = static_cast<size_t>(new_cap), oc = static_cast<size_t>(cap_);
  const bool q8 = kv_.type == KvType::Q8, ranked = kv_.positions == KvPositions::Cache;
  for (Layer& L : layers_) {
    const size_t live = static_cast<size_t>(L.n);
    if (live > nc) fail("internal: KV reallocation below the live slots");
    relayout_heads(L.keys, nkv, oc, nc, rb, live);
    relayout_heads(L.values, nkv, oc, nc, rb, live);
    relayout_heads(L.key_scale, q8 ? nkv : 0, oc, nc, 1, live);
    relayout_heads(L.value_scale, q8 ? nkv : 0, oc, nc, 1, live);
    relayout_heads(L.score, nkv, oc, nc, 1, live);
    relayout_heads(L.pos, nkv, oc, nc, 1, live);
    relayout_heads(L.order, ranked ? nkv : 0, oc, nc, 1, live);
  }
  cap_ = new_cap;
  const ScoreNeed need = policy_->score_need();
  mass_.assign(need == ScoreNeed::Accumulated ? nkv * nc : 0, 0.0f);
  last_mass_.assign(need == ScoreNeed::LastRow ? nkv * nc : 0, 0.0f);
  update_bytes();
}

namespace {

// Keys + values (stored type, q8 scales included) + positions + scores (+ the rank order
// under `cache` positions) of `cap` slots per (layer, KV head), plus the per-step score
// scratch ([n_kv_heads][cap]) when the policy reads attention statistics.
size_t cache_bytes(const AttentionShape& cfg, const KvResolved& kv, ScoreNeed need, int cap) {
  const size_t c = static_cast<size_t>(cap), nkv = static_cast<size_t>(cfg.n_kv_heads);
  size_t per_slot = 2 * kv_row_bytes(kv.type, cfg.head_dim) + sizeof(int32_t) + sizeof(float);
  if (kv.type == KvType::Q8) per_slot += 2 * sizeof(uint16_t);
  if (kv.positions == KvPositions::Cache) per_slot += sizeof(uint32_t);
  const size_t scratch = need == ScoreNeed::None ? 0 : nkv * c * sizeof(float);
  return c * static_cast<size_t>(cfg.n_layers) * nkv * per_slot + scratch;
}

constexpr uint32_t kDead = std::numeric_limits<uint32_t>::max();

}  // namespace

size_t KvCache::bytes_for(const AttentionShape& cfg, const KvResolved& kv, int cap) {
  return cache_bytes(cfg, kv, make_policy(kv)->score_need(), cap);
}

void KvCache::update_bytes() {
  bytes_ = cache_bytes(cfg_, kv_, policy_->score_need(), cap_);
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
    // prompt) sets the size once: budget + step; within the context never more than the
    // context holds. Between steps a head holds at most B slots, so later steps up to that
    // size fit. (A sequence streaming past the context may need more than the context.)
    const int step = cap_ == 0 && max_step_ >= n_tokens ? max_step_ : n_tokens;
    reallocate(std::max(needed, std::min(kv_.budget + step, cfg_.context_length)));
  } else {
    reallocate((needed + kPageSlots - 1) / kPageSlots * kPageSlots);
  }
}

void KvCache::store_row(const float* x, uint8_t* row, uint16_t* scale) const {
  const size_t hd = static_cast<size_t>(cfg_.head_dim);
  switch (kv_.type) {
    case KvType::F32:
      std::memcpy(row, x, hd * sizeof(float));
      return;
    case KvType::F16:
      encode_kv_row_f16(x, hd, reinterpret_cast<uint16_t*>(row));
      return;
    case KvType::Q8:
      encode_q8_(x, hd, reinterpret_cast<int8_t*>(row), scale);
      return;
  }
}

// A decoding step appends one slot per head, each in its own cache lines (the heads are
// `cap` slots apart), which the rest of the step has long pushed out of the cache: written
// one after another, each row's store waited on its own miss (~0.1 us, 2-3% of a batch-22
// decode step of mha-200m). Requesting every line first lets the misses overlap.
void KvCache::prefetch_slot(const Layer& L, size_t slot) const {
  const size_t cap = static_cast<size_t>(cap_), rb = row_bytes_;
  for (size_t h = 0; h < static_cast<size_t>(cfg_.n_kv_heads); ++h) {
    const size_t at = h * cap + slot;
    __builtin_prefetch(&L.keys[at * rb], 1);
    __builtin_prefetch(&L.keys[at * rb + rb - 1], 1);
    __builtin_prefetch(&L.values[at * rb], 1);
    __builtin_prefetch(&L.values[at * rb + rb - 1], 1);
    if (!L.key_scale.empty()) {
      __builtin_prefetch(&L.key_scale[at], 1);
      __builtin_prefetch(&L.value_scale[at], 1);
    }
    __builtin_prefetch(&L.pos[at], 1);
    __builtin_prefetch(&L.score[at], 1);
    if (!L.order.empty()) __builtin_prefetch(&L.order[at], 1);
  }
}

void KvCache::append(int layer, const float* k, const float* v, const int32_t* positions, int n_tokens) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  if (L.n + n_tokens > cap_) fail("internal: KV append beyond capacity (begin_step not called)");
  const size_t hd = static_cast<size_t>(cfg_.head_dim), cap = static_cast<size_t>(cap_), rb = row_bytes_;
  const size_t kvd = static_cast<size_t>(cfg_.kv_dim());
  const bool q8 = kv_.type == KvType::Q8, ranked = !L.order.empty();
  if (ranked) {
    // The rank order appends the new slots at its end: they must come after every kept position.
    for (int t = 0; t < n_tokens; ++t) {
      const int32_t prev = t > 0 ? positions[t - 1] : L.n > 0 ? L.pos[L.order[static_cast<size_t>(L.n) - 1]] : -1;
      if (positions[t] <= prev) fail("internal: KV positions must ascend ({} after {})", positions[t], prev);
    }
  }
  if (n_tokens == 1) prefetch_slot(L, static_cast<size_t>(L.n));
  for (int h = 0; h < cfg_.n_kv_heads; ++h) {
    const size_t hb = static_cast<size_t>(h);
    for (int t = 0; t < n_tokens; ++t) {
      const size_t slot = static_cast<size_t>(L.n) + static_cast<size_t>(t);
      const size_t src = static_cast<size_t>(t) * kvd + hb * hd;
      const size_t at = hb * cap + slot;
      store_row(k + src, &L.keys[at * rb], q8 ? &L.key_scale[at] : nullptr);
      store_row(v + src, &L.values[at * rb], q8 ? &L.value_scale[at] : nullptr);
      L.pos[at] = positions[t];
      L.score[at] = 0.0f;
      if (ranked) L.order[at] = static_cast<uint32_t>(slot);
    }
  }
  for (int t = 0; t < n_tokens; ++t) L.max_pos = std::max(L.max_pos, positions[t]);
  L.n += n_tokens;
  std::fill(mass_.begin(), mass_.end(), 0.0f);
  std::fill(last_mass_.begin(), last_mass_.end(), 0.0f);
}

KvLayerView KvCache::layer_view(int layer) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  KvLayerView v;
  v.type = kv_.type;
  v.keys = L.keys.data();
  v.values = L.values.data();
  v.key_scale = L.key_scale.empty() ? nullptr : L.key_scale.data();
  v.value_scale = L.value_scale.empty() ? nullptr : L.value_scale.data();
  v.row_bytes = row_bytes_;
  v.pos = L.pos.data();
  v.order = L.order.empty() ? nullptr : L.order.data();
  v.cap = static_cast<size_t>(cap_);
  v.n = L.n;
  v.max_pos = L.max_pos;
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

// Slot `from` of the head at `base` into slot `to` (nothing when they are the same): rows,
// scales, position, scores.
void KvCache::move_slot(Layer& L, size_t base, size_t from, size_t to) {
  if (from == to) return;
  const size_t rb = row_bytes_, dst = base + to, src = base + from;
  std::memcpy(&L.keys[dst * rb], &L.keys[src * rb], rb);
  std::memcpy(&L.values[dst * rb], &L.values[src * rb], rb);
  if (!L.key_scale.empty()) {
    L.key_scale[dst] = L.key_scale[src];
    L.value_scale[dst] = L.value_scale[src];
  }
  L.pos[dst] = L.pos[src];
  L.score[dst] = L.score[src];
  if (!last_mass_.empty()) last_mass_[dst] = last_mass_[src];
}

void KvCache::evict_head(Layer& L, int layer_index, int kv_head, int n_evict, int64_t tokens_seen) {
  const size_t cap = static_cast<size_t>(cap_);
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
  // The rank order follows the moves: rank_of_slot_ is its inverse while slots move.
  uint32_t* order = L.order.empty() ? nullptr : &L.order[base];
  if (order && n_evict == 1) {
    // Decoding: one victim. One pass finds the ranks of the victim and of the last slot
    // (which moves into the victim's storage), then the ranks above the victim's close up.
    const uint32_t victim = static_cast<uint32_t>(victims_[0]), last = static_cast<uint32_t>(L.n - 1);
    size_t rank_victim = 0, rank_last = 0;
    for (size_t r = 0; r < static_cast<size_t>(L.n); ++r) {
      rank_victim = order[r] == victim ? r : rank_victim;
      rank_last = order[r] == last ? r : rank_last;
    }
    order[rank_last] = victim;
    std::memmove(order + rank_victim, order + rank_victim + 1,
                 (static_cast<size_t>(L.n) - 1 - rank_victim) * sizeof(uint32_t));
    move_slot(L, base, last, victim);
    return;
  }
  if (order) {
    rank_of_slot_.resize(static_cast<size_t>(L.n));
    for (int r = 0; r < L.n; ++r) rank_of_slot_[order[r]] = static_cast<uint32_t>(r);
  }
  // Fill each hole with the last live slot; descending order keeps the moved slot live.
  std::sort(victims_.begin(), victims_.end(), std::greater<>());
  int n = L.n;
  for (int victim : victims_) {
    const int last = n - 1;
    const size_t vs = static_cast<size_t>(victim), ls = static_cast<size_t>(last);
    if (order) order[rank_of_slot_[vs]] = kDead;
    if (victim != last) {
      move_slot(L, base, ls, vs);
      if (order) {
        order[rank_of_slot_[ls]] = static_cast<uint32_t>(victim);
        rank_of_slot_[vs] = rank_of_slot_[ls];
      }
    }
    --n;
  }
  if (order) {
    int w = 0;
    for (int r = 0; r < L.n; ++r) {
      if (order[r] != kDead) order[w++] = order[r];
    }
  }
}

void KvCache::clear() {
  for (Layer& L : layers_) {
    L.n = 0;
    L.max_pos = std::numeric_limits<int32_t>::min();
  }
}

const int32_t* KvCache::positions(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)].pos[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_)];
}
const float* KvCache::scores(int layer, int kv_head) const {
  return &layers_[static_cast<size_t>(layer)].score[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_)];
}
const uint32_t* KvCache::order(int layer, int kv_head) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  return L.order.empty() ? nullptr : &L.order[static_cast<size_t>(kv_head) * static_cast<size_t>(cap_)];
}

void KvCache::read_row(const std::vector<uint8_t>& rows, const std::vector<uint16_t>& scales, int kv_head, int slot,
                       float* out) const {
  const size_t at = static_cast<size_t>(kv_head) * static_cast<size_t>(cap_) + static_cast<size_t>(slot);
  const size_t hd = static_cast<size_t>(cfg_.head_dim);
  const uint8_t* row = &rows[at * row_bytes_];
  switch (kv_.type) {
    case KvType::F32:
      std::memcpy(out, row, hd * sizeof(float));
      return;
    case KvType::F16:
      decode_kv_row_f16(reinterpret_cast<const uint16_t*>(row), hd, out);
      return;
    case KvType::Q8:
      decode_kv_row_q8(reinterpret_cast<const int8_t*>(row), scales[at], hd, out);
      return;
  }
}

void KvCache::read_key(int layer, int kv_head, int slot, float* out) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  read_row(L.keys, L.key_scale, kv_head, slot, out);
}

void KvCache::read_value(int layer, int kv_head, int slot, float* out) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  read_row(L.values, L.value_scale, kv_head, slot, out);
}

}  // namespace h2o
