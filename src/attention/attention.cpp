#include "attention/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "common/check.h"
#include "kernels/ops.h"

namespace h2o {
namespace {

// The slots a job's latest row sees (`visible`, ascending), and for each prefix length k
// of them the largest position inside it (max_in[k]) and the smallest after it
// (min_after[k]). A row at position q sees exactly a prefix of them when its visible slots
// are the first k: max_in[k] <= q < min_after[k]. The rows of a prefill chunk do (they see
// the kept slots and then the chunk's slots up to their own, in storage order), and then
// up to kDotRows rows share each key row's widening, kKvMaxQueries each value row's
// (kv_kernels.h, the multi-query entries). Built once per (job, KV head) instead of
// rescanning the gathered positions for every row (that scan was half of this file's own
// time in a batched run).
struct PrefixTable {
  std::vector<int32_t> max_in, min_after;
  size_t m = 0;
  void build(const int32_t* pos, const uint32_t* visible, size_t count) {
    m = count;
    max_in.resize(m + 1);
    min_after.resize(m + 1);
    max_in[0] = std::numeric_limits<int32_t>::min();
    for (size_t k = 0; k < m; ++k) max_in[k + 1] = std::max(max_in[k], pos[visible[k]]);
    min_after[m] = std::numeric_limits<int32_t>::max();
    for (size_t k = m; k-- > 0;) min_after[k] = std::min(min_after[k + 1], pos[visible[k]]);
  }
  // The prefix a row at position q sees, or -1 if what it sees is not a prefix. max_in is
  // non-decreasing: k is the longest prefix whose positions are all <= q.
  ptrdiff_t prefix_for(int32_t q) const {
    const size_t k = static_cast<size_t>(
        std::upper_bound(max_in.begin() + 1, max_in.begin() + 1 + static_cast<ptrdiff_t>(m), q) - (max_in.begin() + 1));
    return min_after[k] > q ? static_cast<ptrdiff_t>(k) : -1;
  }
};

// Rows of a prefill chunk whose scores are computed at once (the multi-query dots widen
// each key once for all of them: from eight on, into a tile of keys in lanes).
constexpr size_t kDotRows = 32;

// Per-thread scratch for one KV head's rows: probabilities (up to kDotRows rows of n),
// visible slot indices (and, under `cache` positions, each slot's rank), and the two rows
// a rotated key passes through.
struct HeadScratch {
  std::vector<float> p;
  std::vector<uint32_t> visible;
  std::vector<uint32_t> slot_rank;
  std::vector<int32_t> visible_pos;
  std::vector<float> rope_rows;
  std::vector<uint32_t> all_slots;    // 0, 1, 2, ...: `visible` when a row sees every slot
  std::vector<uint32_t> row_visible;  // one row's own, when `visible` holds the job's
  PrefixTable prefixes;
  void reserve(size_t n, size_t head_dim, size_t rows_at_once, bool observed, bool ranked) {
    if (p.size() < rows_at_once * n) p.resize(rows_at_once * n);
    if (visible.size() < n) visible.resize(n);
    if (ranked && slot_rank.size() < n) slot_rank.resize(n);
    if (observed && visible_pos.size() < n) visible_pos.resize(n);
    if (rope_rows.size() < 2 * head_dim) rope_rows.resize(2 * head_dim);
    if (row_visible.size() < n) row_visible.resize(n);
    for (size_t j = all_slots.size(); j < n; ++j) all_slots.push_back(static_cast<uint32_t>(j));
  }
};

// One KV head's stored keys and values in the cache's type.
struct HeadRows {
  KvType type = KvType::F32;
  const uint8_t* keys = nullptr;
  const uint8_t* values = nullptr;
  const uint16_t* key_scale = nullptr;
  const uint16_t* value_scale = nullptr;
};

// out[j] = q . key of slot visible[j] (rotated by rank[visible[j]] under `cache` positions).
void dot_keys(const HeadRows& r, const KvRopeRows* rope, const float* q, const uint32_t* visible, const uint32_t* rank,
              size_t m, size_t hd, float* scratch, float* out) {
  const KvKernelTable* kv = r.type == KvType::F32 && rope == nullptr ? nullptr : &active_kv_kernels();
  switch (r.type) {
    case KvType::F32: {
      const float* keys = reinterpret_cast<const float*>(r.keys);
      if (rope) {
        kv->dot_rows_rope_f32(q, keys, visible, rank, m, hd, *rope, scratch, out);
      } else {
        dot_f32_rows(q, keys, visible, m, static_cast<int>(hd), out);
      }
      return;
    }
    case KvType::F16: {
      const uint16_t* keys = reinterpret_cast<const uint16_t*>(r.keys);
      if (rope) {
        kv->dot_rows_rope_f16(q, keys, visible, rank, m, hd, *rope, scratch, out);
      } else {
        kv->dot_rows_f16(q, keys, visible, m, hd, out);
      }
      return;
    }
    case KvType::Q8: {
      const int8_t* keys = reinterpret_cast<const int8_t*>(r.keys);
      if (rope) {
        kv->dot_rows_rope_q8(q, keys, r.key_scale, visible, rank, m, hd, *rope, scratch, out);
      } else {
        kv->dot_rows_q8(q, keys, r.key_scale, visible, m, hd, out);
      }
      return;
    }
  }
}

// y += p[j] * value of slot visible[j], j in order.
void add_values(const HeadRows& r, const float* p, const uint32_t* visible, size_t m, size_t hd, float* y) {
  switch (r.type) {
    case KvType::F32:
      axpy_f32_rows(p, reinterpret_cast<const float*>(r.values), visible, m, static_cast<int>(hd), y);
      return;
    case KvType::F16:
      active_kv_kernels().axpy_rows_f16(p, reinterpret_cast<const uint16_t*>(r.values), visible, m, hd, y);
      return;
    case KvType::Q8:
      active_kv_kernels().axpy_rows_q8(p, reinterpret_cast<const int8_t*>(r.values), r.value_scale, visible, m, hd, y);
      return;
  }
}

// dot_keys() for nq query rows (row t at q + t * q_stride) under absolute positions, f16 /
// q8 keys: out[t * out_stride + j].
void dot_keys_queries(const HeadRows& r, const KvKernelTable& kv, const float* q, size_t q_stride, size_t nq,
                      const uint32_t* visible, size_t m, size_t hd, float* out, size_t out_stride) {
  if (r.type == KvType::Q8) {
    kv.dot_queries_q8(q, q_stride, nq, reinterpret_cast<const int8_t*>(r.keys), r.key_scale, visible, m, hd, out,
                      out_stride);
  } else {
    kv.dot_queries_f16(q, q_stride, nq, reinterpret_cast<const uint16_t*>(r.keys), visible, m, hd, out, out_stride);
  }
}

// add_values() for nq outputs, f16 / q8 values: y[t] += p[t][j] * value of slot visible[j].
void add_values_queries(const HeadRows& r, const KvKernelTable& kv, const float* const* p, size_t nq,
                        const uint32_t* visible, size_t m, size_t hd, float* const* y) {
  if (r.type == KvType::Q8) {
    kv.axpy_queries_q8(p, nq, reinterpret_cast<const int8_t*>(r.values), r.value_scale, visible, m, hd, y);
  } else {
    kv.axpy_queries_f16(p, nq, reinterpret_cast<const uint16_t*>(r.values), visible, m, hd, y);
  }
}

// The causal mask by absolute position: the slots with pos <= limit, ascending, into
// visible; returns their count.
size_t visible_slots(const int32_t* pos, size_t n, int32_t limit, uint32_t* visible) {
  size_t m = 0;
  for (size_t j = 0; j < n; ++j) {
    if (pos[j] <= limit) visible[m++] = static_cast<uint32_t>(j);
  }
  return m;
}

// All query heads of KV head `h` over all rows of one job. Writes out[row][qh*hd..] for the
// group's query heads and the statistics of head h only, so jobs x heads run in parallel.
// Rows go kDotRows at a time through the multi-query dots, and kKvMaxQueries at a time
// through the value kernels, where they apply (f16 / q8 rows under absolute positions,
// visible sets that are prefixes of each other), one at a time otherwise; either way each
// row gets the same bits, and the statistics add the rows in order.
void attend_kv_head(const AttentionShape& cfg, const AttentionJob& job, size_t h, HeadScratch& s,
                    const AttentionObserver* observer, int layer) {
  const size_t hd = static_cast<size_t>(cfg.head_dim);
  const size_t qd = static_cast<size_t>(cfg.q_dim());
  const int group = cfg.group_size();
  const float scale_div = sqrtf(static_cast<float>(cfg.head_dim));
  // Dividing by a power of two (head_dim 16, 64, 256) is multiplying by its reciprocal, bit
  // for bit (both scale the exact value once), and the product vectorizes more cheaply.
  int exponent = 0;
  const bool power_of_two = std::frexp(scale_div, &exponent) == 0.5f;
  const float scale_mul = power_of_two ? 1.0f / scale_div : 0.0f;
  const KvLayerView& kv = job.kv;
  const size_t n = static_cast<size_t>(kv.n);
  const HeadRows rows{kv.type, kv.keys + h * kv.cap * kv.row_bytes, kv.values + h * kv.cap * kv.row_bytes,
                      kv.key_scale ? kv.key_scale + h * kv.cap : nullptr,
                      kv.value_scale ? kv.value_scale + h * kv.cap : nullptr};
  const int32_t* pos = kv.pos + h * kv.cap;
  // `cache` positions: the slots by rank (order[r] is the slot of rank r); a query row sees
  // a prefix of them, in which a slot keeps its rank. The slots are still visited in
  // storage order, as under absolute positions, with each one's rank beside it: visiting
  // them in rank order would gather rows all over the head's storage, which the hardware
  // prefetcher cannot follow (2-3x slower per key once the cache is larger than the CPU's
  // caches: kv_scores/*/scattered in bench/kernels_bench.cpp).
  const uint32_t* order = kv.order ? kv.order + h * kv.cap : nullptr;
  const KvRopeRows* rope = order ? &job.key_rope : nullptr;
  // f16 / q8 rows under absolute positions go through the multi-query kernels: a prefill
  // chunk's rows several at a time (`grouped`).
  const bool multi = rope == nullptr && kv.type != KvType::F32;
  const bool grouped = multi && job.n_rows > 1;
  s.reserve(n, hd, grouped ? std::min<size_t>(kDotRows, static_cast<size_t>(job.n_rows)) : 1, observer != nullptr,
            order != nullptr);
  if (order) {
    for (size_t r = 0; r < n; ++r) s.slot_rank[order[r]] = static_cast<uint32_t>(r);
  }
  const KvKernelTable* kernels = multi ? &active_kv_kernels() : nullptr;
  float* mass = kv.mass ? kv.mass + h * kv.cap : nullptr;
  float* last = kv.last_row_mass ? kv.last_row_mass + h * kv.cap : nullptr;
  // Row r's probabilities over its m visible slots, in p: the statistics and the observer.
  const auto finish_probabilities = [&](size_t qh, int r, const uint32_t* visible, float* p, size_t m) {
    if (power_of_two) {
      for (size_t j = 0; j < m; ++j) p[j] = p[j] * scale_mul;
    } else {
      for (size_t j = 0; j < m; ++j) p[j] = p[j] / scale_div;
    }
    softmax(p, static_cast<int>(m));
    if (observer) {
      for (size_t j = 0; j < m; ++j) s.visible_pos[j] = pos[visible[j]];
      (*observer)(AttentionRow{layer, static_cast<int>(qh), static_cast<int>(h), job.q_pos[r], s.visible_pos.data(), p,
                               static_cast<int>(m)});
    }
    // The visible slots are ascending; when the last is m - 1 they are 0 .. m - 1 (every
    // prompt row and decode row of a cache whose slots all precede it): then the
    // statistics add contiguously, in a loop the compiler vectorizes (the same sums).
    const bool contiguous = m > 0 && visible[m - 1] == m - 1;
    const auto add_to = [&](float* stat) {
      if (contiguous) {
        for (size_t j = 0; j < m; ++j) stat[j] += p[j];
      } else {
        for (size_t j = 0; j < m; ++j) stat[visible[j]] += p[j];
      }
    };
    if (mass) add_to(mass);
    if (last && r == job.n_rows - 1) add_to(last);
  };
  // Rows that may go several at a time: the slots the job's latest row sees, and which
  // prefix of them each row sees.
  const uint32_t* job_visible = s.visible.data();
  if (grouped) {
    const int32_t latest = *std::max_element(job.q_pos, job.q_pos + job.n_rows);
    const size_t m_job = visible_slots(pos, n, latest, s.visible.data());
    s.prefixes.build(pos, job_visible, m_job);
  }
  // One row's own visible slots: every slot (a decoding row, whose cache holds only older
  // slots and its own) without a pass that copies their indices, or those with pos <= q.
  // (The cache's bound on its positions: a scan of them per (row group, head) was ~1.3% of
  // a batched decode step.)
  const int32_t newest = kv.max_pos;
  const auto row_visible = [&](int32_t q) -> std::pair<const uint32_t*, size_t> {
    if (newest <= q) return {s.all_slots.data(), n};
    uint32_t* out = grouped ? s.row_visible.data() : s.visible.data();
    return {out, visible_slots(pos, n, q, out)};
  };
  for (int g = 0; g < group; ++g) {
    const size_t qh = h * static_cast<size_t>(group) + static_cast<size_t>(g);
    for (int r = 0; r < job.n_rows;) {
      const float* qv = job.q + static_cast<size_t>(r) * qd + qh * hd;
      float* o = job.out + static_cast<size_t>(r) * qd + qh * hd;
      const size_t nq = grouped ? std::min<size_t>(kDotRows, static_cast<size_t>(job.n_rows - r)) : 1;
      if (nq > 1) {
        size_t m[kDotRows] = {};
        size_t m_all = 0;
        bool prefixes = true;
        for (size_t t = 0; t < nq && prefixes; ++t) {
          const ptrdiff_t k = s.prefixes.prefix_for(job.q_pos[r + static_cast<int>(t)]);
          prefixes = k >= 0;
          m[t] = prefixes ? static_cast<size_t>(k) : 0;
          m_all = std::max(m_all, m[t]);
        }
        if (prefixes) {
          const uint32_t* visible = job_visible;
          float* p = s.p.data();
          dot_keys_queries(rows, *kernels, qv, qd, nq, visible, m_all, hd, p, n);
          for (size_t t = 0; t < nq; ++t) {
            finish_probabilities(qh, r + static_cast<int>(t), visible, p + t * n, m[t]);
            std::memset(o + t * qd, 0, hd * sizeof(float));
          }
          // Values kKvMaxQueries rows at a time: the slots all of them see, for all at once;
          // then each row's own further slots.
          for (size_t t0 = 0; t0 < nq; t0 += kKvMaxQueries) {
            const size_t k = std::min(kKvMaxQueries, nq - t0);
            const float* pt[kKvMaxQueries];
            float* yt[kKvMaxQueries];
            size_t m_min = m_all;
            for (size_t t = 0; t < k; ++t) {
              pt[t] = p + (t0 + t) * n;
              yt[t] = o + (t0 + t) * qd;
              m_min = std::min(m_min, m[t0 + t]);
            }
            add_values_queries(rows, *kernels, pt, k, visible, m_min, hd, yt);
            for (size_t t = 0; t < k; ++t)
              add_values(rows, pt[t] + m_min, visible + m_min, m[t0 + t] - m_min, hd, yt[t]);
          }
          r += static_cast<int>(nq);
          continue;
        }
      }
      // One row: its own visible slots.
      const auto [visible, m1] = row_visible(job.q_pos[r]);
      float* p = s.p.data();
      dot_keys(rows, rope, qv, visible, order ? s.slot_rank.data() : nullptr, m1, hd, s.rope_rows.data(), p);
      finish_probabilities(qh, r, visible, p, m1);
      std::memset(o, 0, hd * sizeof(float));
      add_values(rows, p, visible, m1, hd, o);
      ++r;
    }
  }
}

void check_job(const AttentionJob& job) {
  if (job.kv.order && job.key_rope.cs == nullptr) fail("internal: cache positions without rank rotations");
}

}  // namespace

void attention(const AttentionShape& cfg, const AttentionJob& job, ThreadPool& pool, const AttentionObserver* observer,
               int layer) {
  check_job(job);
  if (observer) {
    // Observed runs stay on this thread: the observer is not thread-safe.
    HeadScratch s;
    for (size_t h = 0; h < static_cast<size_t>(cfg.n_kv_heads); ++h) attend_kv_head(cfg, job, h, s, observer, layer);
    return;
  }
  attention_batch(cfg, std::span(&job, 1), pool);
}

void attention_batch(const AttentionShape& cfg, std::span<const AttentionJob> jobs, ThreadPool& pool) {
  if (jobs.empty()) return;
  const size_t heads = static_cast<size_t>(cfg.n_kv_heads);
  size_t work = 0;
  std::vector<size_t> cost(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    check_job(jobs[i]);
    cost[i] = static_cast<size_t>(jobs[i].n_rows) * static_cast<size_t>(jobs[i].kv.n);
    work += cost[i] * static_cast<size_t>(cfg.n_heads) * static_cast<size_t>(cfg.head_dim) * 2;
  }
  // One task per (job, KV head): each writes its own outputs and statistics. Jobs of
  // equal cost (decode rows over equally full caches, or one job) are split into one
  // contiguous range per thread: each thread then streams one contiguous stretch of the
  // heads' rows, with no claim per task. A prefill chunk's head can cost hundreds of
  // decode rows' heads: then the costliest jobs go first and threads claim tasks as they
  // free up, so one thread does not get every chunk head while the other runs out of
  // decode rows.
  const auto [least, most] = std::minmax_element(cost.begin(), cost.end());
  if (*least == *most) {
    pool.parallel_for(
        jobs.size() * heads,
        [&](size_t begin, size_t end) {
          HeadScratch s;
          for (size_t i = begin; i < end; ++i) attend_kv_head(cfg, jobs[i / heads], i % heads, s, nullptr, 0);
        },
        work);
    return;
  }
  std::vector<size_t> by_cost(jobs.size());
  for (size_t i = 0; i < by_cost.size(); ++i) by_cost[i] = i;
  std::stable_sort(by_cost.begin(), by_cost.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<HeadScratch> scratch(static_cast<size_t>(pool.size()));
  pool.parallel_claim(
      jobs.size() * heads,
      [&](size_t task, size_t part) {
        attend_kv_head(cfg, jobs[by_cost[task / heads]], task % heads, scratch[part], nullptr, 0);
      },
      work);
}

}  // namespace h2o
