// Microbenchmarks of the kernels (Google Benchmark), on every SIMD target this CPU runs
// ("scalar" is the reference code, the engine's path before SIMD):
//   matvec/<type>/<rows>x<cols>/<target>   one token (kMatvecShapes), every registered type
//   gemm64/<type>/2048x2048/<target>       64 tokens (prefill)
//   gemm22/<type>/2048x2048/<target>       22 tokens (a batch of decoding sequences)
//   gemm22/<type>/32000x2048/<target>      the same from memory (larger than the L3 cache,
//                                          as a batched decode step streams every matrix)
//   attn_dot/<head_dim>x<slots>/<target>   q.k over 1024 slots, then the value accumulation
//   kv_scores/<kv type>/<positions>/<visit order>/64x<slots>/<target>
//                                          q.k over the kept slots of one KV head as the
//                                          attention reads them (dot_keys in attention.cpp):
//                                          `absolute` keys as stored, `cache` keys rotated by
//                                          their rank in the kept set (--kv-positions cache)
//   kv_values/<kv type>/64x<slots>/<target> y += p[j] * value row j over the slots of one
//                                          KV head, rows from memory (add_values in
//                                          attention.cpp)
//   kv_chunk/<kv type>/<nq>q/64x<slots>x64/<target>
//                                          a prefill chunk's scores and values in one KV
//                                          head, 64 query rows over 666 slots in cache, nq
//                                          rows at a time (the multi-query kernels)
//   evict_scan/<slots>/<target>            h2o's one victim per (layer, KV head) and
//                                          decode step: the lowest accumulated score outside
//                                          the recent half (lowest_outside_recent)
//   softmax/<n>/<target>                   one attention row's softmax over n scores
//   swiglu/<n>/<target>                    one token's SwiGLU over n hidden values
//   softmax/<n>/libm, swiglu/<n>/libm      the loops these replaced (expf per value)
// One thread. items/s counts multiply-adds (softmax, swiglu: values); bytes/s counts
// weight bytes read.
//
//   build/h2o_kernels_bench --benchmark_filter='matvec/Q8_0'

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/thread_pool.h"
#include "format/matrix.h"
#include "format/packed_quant.h"
#include "format/tensor_type.h"
#include "kernels/dispatch.h"
#include "kernels/kv_kernels.h"
#include "kernels/kv_reference.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"

namespace h2o {
namespace {

// A rows x cols matrix of `type` with random values (owning its bytes), quantized types
// packed as a loaded model's are. Quantized types: random codes, scales and mins with small
// fp16 super-scales (the encoders are too slow for 65M values; the kernels' speed does not
// depend on the values).
struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  AlignedBuffer packed;
  Matrix m;
};

// Where a block keeps its fp16 super-scale(s).
std::pair<size_t, size_t> scale_fields(TensorType t) {
  switch (t) {
    case TensorType::Q2_K:
      return {80, 82};
    case TensorType::Q3_K:
      return {108, 108};
    case TensorType::Q6_K:
      return {208, 208};
    case TensorType::Q4_1:
    case TensorType::Q5_1:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
      return {0, 2};
    default:
      return {0, 0};
  }
}

OwnedMatrix random_matrix(TensorType type, int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  OwnedMatrix o;
  o.m.type = type;
  o.m.rows = rows;
  o.m.cols = cols;
  o.m.row_bytes = row_bytes(type, static_cast<size_t>(cols));
  o.bytes.resize(o.m.row_bytes * static_cast<size_t>(rows));
  if (is_packable(type)) {
    for (auto& b : o.bytes) b = static_cast<uint8_t>(rng());
    const size_t block = traits(type).block_bytes;
    const uint16_t d = fp32_to_fp16(0.001f);
    const auto [d_at, dmin_at] = scale_fields(type);
    for (size_t off = 0; off < o.bytes.size(); off += block) {
      std::memcpy(&o.bytes[off + d_at], &d, 2);
      std::memcpy(&o.bytes[off + dmin_at], &d, 2);
    }
  } else {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int r = 0; r < rows; ++r) {
      for (auto& v : row) v = normal(rng);
      quantize_row(type, row.data(), o.bytes.data() + static_cast<size_t>(r) * o.m.row_bytes, row.size());
    }
  }
  o.m.data = o.bytes.data();
  if (is_packable(type)) {
    ThreadPool pool(1);
    o.packed = AlignedBuffer(packed_shape(type, static_cast<size_t>(rows), static_cast<size_t>(cols)).bytes());
    pack_matrix(type, o.m.data, o.m.row_bytes, static_cast<size_t>(rows), static_cast<size_t>(cols), o.packed.data(),
                pool);
    o.m.packed = o.packed.data();
  }
  return o;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

void bench_matmul(benchmark::State& state, const KernelTable* k, TensorType type, int rows, int cols, int tokens) {
  const OwnedMatrix w = random_matrix(type, rows, cols, 1);
  const auto x = random_floats(static_cast<size_t>(tokens) * static_cast<size_t>(cols), 2);
  std::vector<float> out(static_cast<size_t>(tokens) * static_cast<size_t>(rows));
  ThreadPool pool(1);
  for (auto _ : state) {
    matmul(*k, w.m, x.data(), tokens, out.data(), pool);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const auto iters = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(iters * rows * cols * tokens);
  state.SetBytesProcessed(iters * static_cast<int64_t>(w.m.bytes()));
}

// Attention for one query head: scores = q.k over `slots` keys, out += p * v.
void bench_attention(benchmark::State& state, const KernelTable* k, int head_dim, int slots) {
  const auto hd = static_cast<size_t>(head_dim);
  const auto keys = random_floats(hd * static_cast<size_t>(slots), 3);
  const auto values = random_floats(hd * static_cast<size_t>(slots), 4);
  const auto q = random_floats(hd, 5);
  std::vector<float> scores(static_cast<size_t>(slots)), out(hd);
  for (auto _ : state) {
    for (size_t s = 0; s < scores.size(); ++s) scores[s] = k->dot_f32(q.data(), keys.data() + s * hd, hd);
    std::fill(out.begin(), out.end(), 0.0f);
    for (size_t s = 0; s < scores.size(); ++s) k->axpy_f32(scores[s] * 1e-3f, values.data() + s * hd, out.data(), hd);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2 * head_dim * slots);
}

// One decode step's eviction scan in one KV head of h2o: `slots` slots (the budget + the
// new token) in storage order after earlier evictions refilled holes (positions shuffled),
// accumulated scores ~|N(0, 1)|, the most recent half protected. Items: slots.
void bench_evict_scan(benchmark::State& state, const KvKernelTable* kv, int slots) {
  const auto n = static_cast<size_t>(slots);
  std::vector<int32_t> pos(n);
  for (size_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(1000 + i);
  std::mt19937 rng(12);
  std::shuffle(pos.begin(), pos.end(), rng);
  auto score = random_floats(n, 13);
  for (float& x : score) x = std::fabs(x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(kv->lowest_outside_recent(score.data(), pos.data(), n, slots / 2));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * slots);
}

// Scores of one query against `slots` kept keys of one KV head (head_dim 64), the keys
// stored as `kv_type` (0 f32, 1 f16, 2 q8) in a 2x larger cache, half its slots visited:
// in storage order, or `scattered` (a permutation, as the rank order visits slots after
// evictions); with `rank_rope`, each rotated by its rank (LLaMA-style pairs, base 10000),
// as `--kv-positions cache` reads them. Each iteration takes the next of kHeads heads, so
// the keys come from memory, as decoding reads them (a step reads every head once).
constexpr size_t kHeads = 512;

// Rows of hd floats (values ~N(0, 1)) in the cache's other storage types: f16, and q8 with
// one fixed scale (4 / 127) per row.
struct StoredRows {
  std::vector<uint16_t> f16, scale;
  std::vector<int8_t> q8;
};
StoredRows stored_rows(const std::vector<float>& x, size_t hd) {
  StoredRows r{std::vector<uint16_t>(x.size()), std::vector<uint16_t>(x.size() / hd, fp32_to_fp16(4.0f / 127.0f)),
               std::vector<int8_t>(x.size())};
  for (size_t i = 0; i < x.size(); ++i) {
    r.f16[i] = fp32_to_fp16(x[i]);
    r.q8[i] = static_cast<int8_t>(std::clamp(x[i] * 127.0f / 4.0f, -127.0f, 127.0f));
  }
  return r;
}

void bench_kv_scores(benchmark::State& state, const KernelTable* k, const KvKernelTable* kv, int kv_type,
                     bool rank_rope, int slots, bool scattered) {
  constexpr size_t hd = 64;
  const auto m = static_cast<size_t>(slots), capacity = 2 * m;
  const auto keys = random_floats(hd * capacity * kHeads, 6);
  const auto q = random_floats(hd, 7);
  const StoredRows stored = stored_rows(keys, hd);
  std::vector<uint32_t> visible(m);
  std::mt19937 rng(8);
  std::vector<uint32_t> all(capacity);
  for (uint32_t i = 0; i < capacity; ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  std::copy_n(all.begin(), m, visible.begin());
  if (!scattered) std::sort(visible.begin(), visible.end());
  const RopeTable rope(RopeStyle::Normal, static_cast<int>(hd), static_cast<int>(hd), 10000.0f);
  std::vector<float> cs(m * 2 * hd), angles(hd);
  for (size_t r = 0; r < m; ++r) {
    rope.angles(static_cast<int>(r), angles.data());
    kv_rope_row(angles.data(), hd, false, cs.data() + r * 2 * hd);
  }
  const KvRopeRows rows{cs.data(), hd, false};
  // Each slot's rank (indexed by slot): its place in the visited slots by slot index (the
  // kept set's order by position), so the `in_order` visit is the attention's storage-order
  // visit and `scattered` the rank-order one it replaced.
  std::vector<uint32_t> rank(capacity);
  {
    std::vector<uint32_t> by_slot(visible);
    std::sort(by_slot.begin(), by_slot.end());
    for (size_t r = 0; r < m; ++r) rank[by_slot[r]] = static_cast<uint32_t>(r);
  }
  std::vector<float> scratch(2 * hd), out(m);
  size_t head = 0;
  for (auto _ : state) {
    head = (head + 1) % kHeads;
    const size_t base = head * capacity;
    const float* keys_h = keys.data() + base * hd;
    const uint16_t* keys_f16_h = stored.f16.data() + base * hd;
    const int8_t* keys_q8_h = stored.q8.data() + base * hd;
    const uint16_t* scale_h = stored.scale.data() + base;
    if (kv_type == 0) {
      if (rank_rope) {
        kv->dot_rows_rope_f32(q.data(), keys_h, visible.data(), rank.data(), m, hd, rows, scratch.data(), out.data());
      } else {
        for (size_t j = 0; j < m; ++j) out[j] = k->dot_f32(q.data(), keys_h + visible[j] * hd, static_cast<int>(hd));
      }
    } else if (kv_type == 1) {
      if (rank_rope) {
        kv->dot_rows_rope_f16(q.data(), keys_f16_h, visible.data(), rank.data(), m, hd, rows, scratch.data(),
                              out.data());
      } else {
        kv->dot_rows_f16(q.data(), keys_f16_h, visible.data(), m, hd, out.data());
      }
    } else if (rank_rope) {
      kv->dot_rows_rope_q8(q.data(), keys_q8_h, scale_h, visible.data(), rank.data(), m, hd, rows, scratch.data(),
                           out.data());
    } else {
      kv->dot_rows_q8(q.data(), keys_q8_h, scale_h, visible.data(), m, hd, out.data());
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(hd * m));
}

// The value accumulation of one query row over `slots` slots of one KV head (head_dim 64,
// all visible, in storage order), values stored as `kv_type` (0 f32, 1 f16, 2 q8); each
// iteration takes the next of kHeads heads, so the rows come from memory (items:
// multiply-adds).
void bench_kv_values(benchmark::State& state, const KernelTable* k, const KvKernelTable* kv, int kv_type, int slots) {
  constexpr size_t hd = 64;
  const auto m = static_cast<size_t>(slots);
  const auto values = random_floats(hd * m * kHeads, 9);
  const StoredRows stored = stored_rows(values, hd);
  auto p = random_floats(m, 10);
  for (float& x : p) x = std::fabs(x) / static_cast<float>(m);
  std::vector<uint32_t> idx(m);
  for (uint32_t j = 0; j < m; ++j) idx[j] = j;
  std::vector<float> y(hd);
  size_t head = 0;
  for (auto _ : state) {
    head = (head + 1) % kHeads;
    const size_t base = head * m;
    std::fill(y.begin(), y.end(), 0.0f);
    if (kv_type == 0) {
      k->axpy_rows_f32(p.data(), values.data() + base * hd, idx.data(), m, hd, y.data());
    } else if (kv_type == 1) {
      kv->axpy_rows_f16(p.data(), stored.f16.data() + base * hd, idx.data(), m, hd, y.data());
    } else {
      kv->axpy_rows_q8(p.data(), stored.q8.data() + base * hd, stored.scale.data() + base, idx.data(), m, hd, y.data());
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(hd * m));
}

// A prefill chunk's attention in one KV head, the way attend_kv_head runs it: `rows` query
// rows against `slots` keys and values (head_dim 64, stored as kv_type 1 f16 or 2 q8, all
// visible, in cache: one head's rows), `nq` query rows' scores at a time through the
// multi-query kernels (nq = 1: the one-query kernels, as before them; 32: the tile of rows
// in lanes), their values kKvMaxQueries rows at a time, with the scores as weights (no
// softmax: the kernels only). Items: multiply-adds.
void bench_kv_chunk(benchmark::State& state, const KvKernelTable* kv, int kv_type, int rows, int slots, size_t nq,
                    bool values_too) {
  constexpr size_t hd = 64;
  const auto m = static_cast<size_t>(slots), n_rows = static_cast<size_t>(rows);
  const StoredRows keys = stored_rows(random_floats(hd * m, 11), hd),
                   values = stored_rows(random_floats(hd * m, 12), hd);
  const auto q = random_floats(hd * n_rows, 13);
  std::vector<uint32_t> idx(m);
  for (uint32_t j = 0; j < m; ++j) idx[j] = j;
  std::vector<float> p(nq * m), y(hd * n_rows);
  for (auto _ : state) {
    for (size_t r = 0; r < n_rows; r += nq) {
      const size_t k = std::min(nq, n_rows - r);
      if (kv_type == 1) {
        kv->dot_queries_f16(q.data() + r * hd, hd, k, keys.f16.data(), idx.data(), m, hd, p.data(), m);
      } else {
        kv->dot_queries_q8(q.data() + r * hd, hd, k, keys.q8.data(), keys.scale.data(), idx.data(), m, hd, p.data(), m);
      }
      // Values: kKvMaxQueries rows at a time (the most the value kernels take).
      for (size_t t0 = 0; values_too && t0 < k; t0 += kKvMaxQueries) {
        const size_t kk = std::min(kKvMaxQueries, k - t0);
        const float* pt[kKvMaxQueries];
        float* yt[kKvMaxQueries];
        for (size_t t = 0; t < kk; ++t) {
          pt[t] = p.data() + (t0 + t) * m;
          yt[t] = y.data() + (r + t0 + t) * hd;
        }
        if (kv_type == 1) {
          kv->axpy_queries_f16(pt, kk, values.f16.data(), idx.data(), m, hd, yt);
        } else {
          kv->axpy_queries_q8(pt, kk, values.q8.data(), values.scale.data(), idx.data(), m, hd, yt);
        }
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>((values_too ? 2 : 1) * hd * m * n_rows));
}

// Softmax over n scores of attention's spread; SwiGLU over n values (items: values).
void bench_softmax(benchmark::State& state, const KernelTable* k, int n) {
  const auto x0 = random_floats(static_cast<size_t>(n), 6);
  std::vector<float> x(x0.size());
  for (auto _ : state) {
    std::copy(x0.begin(), x0.end(), x.begin());
    if (k) {
      k->softmax_f32(x.data(), x.size());
    } else {  // the scalar loop with expf that the kernel replaced
      float max = x[0];
      for (float v : x) max = v > max ? v : max;
      float sum = 0.0f;
      for (float& v : x) sum += (v = expf(v - max));
      for (float& v : x) v /= sum;
    }
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}

void bench_swiglu(benchmark::State& state, const KernelTable* k, int n) {
  const auto g0 = random_floats(static_cast<size_t>(n), 7), up = random_floats(static_cast<size_t>(n), 8);
  std::vector<float> g(g0.size());
  for (auto _ : state) {
    std::copy(g0.begin(), g0.end(), g.begin());
    if (k) {
      k->swiglu_f32(g.data(), up.data(), g.size());
    } else {  // the scalar loop with expf that the kernel replaced
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * up[i];
    }
    benchmark::DoNotOptimize(g.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}

// rows x cols: TinyLlama's wq/wo, w_gate/w_up and output (larger than the L3 cache: read
// from memory, as decode reads every matrix), then two small ones (cache-resident).
constexpr std::pair<int, int> kMatvecShapes[] = {{2048, 2048}, {5632, 2048}, {32000, 2048}, {768, 256}, {256, 768}};

void register_all() {
  for (const int n : {410, 1024}) {
    benchmark::RegisterBenchmark(("softmax/" + std::to_string(n) + "/libm").c_str(), bench_softmax, nullptr, n)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("swiglu/2816/libm", bench_swiglu, nullptr, 2816)->Unit(benchmark::kMicrosecond);
  for (const SimdTarget& t : available_simd_targets()) {
    const KernelTable* k = &kernels_for(t);
    const std::string target(t.name);
    for (const TypeInfo* ti : all_types()) {
      const TensorType type = ti->type;
      const std::string tn(ti->name);
      for (const auto& [rows, cols] : kMatvecShapes) {
        benchmark::RegisterBenchmark(
            ("matvec/" + tn + "/" + std::to_string(rows) + "x" + std::to_string(cols) + "/" + target).c_str(),
            bench_matmul, k, type, rows, cols, 1)
            ->Unit(benchmark::kMicrosecond);
      }
      benchmark::RegisterBenchmark(("gemm64/" + tn + "/2048x2048/" + target).c_str(), bench_matmul, k, type, 2048, 2048,
                                   64)
          ->Unit(benchmark::kMillisecond);
      for (const int rows : {2048, 32000}) {
        benchmark::RegisterBenchmark(("gemm22/" + tn + "/" + std::to_string(rows) + "x2048/" + target).c_str(),
                                     bench_matmul, k, type, rows, 2048, 22)
            ->Unit(benchmark::kMillisecond);
      }
    }
    benchmark::RegisterBenchmark(("attn_dot/64x1024/" + target).c_str(), bench_attention, k, 64, 1024)
        ->Unit(benchmark::kMicrosecond);
    const KvKernelTable* kv = &kv_kernels_for(t);
    const auto kv_name = [](int kv_type) { return kv_type == 0 ? "f32" : kv_type == 1 ? "f16" : "q8"; };
    for (const int kv_type : {0, 1, 2}) {
      for (const int slots : {410, 1100}) {
        const std::string name =
            std::string("kv_values/") + kv_name(kv_type) + "/64x" + std::to_string(slots) + "/" + target;
        benchmark::RegisterBenchmark(name.c_str(), bench_kv_values, k, kv, kv_type, slots)
            ->Unit(benchmark::kMicrosecond);
      }
    }
    for (const int kv_type : {1, 2}) {
      for (const size_t nq : {size_t{1}, kKvMaxQueries, size_t{32}}) {
        for (const bool values_too : {true, false}) {
          const std::string name = std::string(values_too ? "kv_chunk/" : "kv_chunk_scores/") + kv_name(kv_type) + "/" +
                                   std::to_string(nq) + "q/64x666x64/" + target;
          benchmark::RegisterBenchmark(name.c_str(), bench_kv_chunk, kv, kv_type, 64, 666, nq, values_too)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
    benchmark::RegisterBenchmark(("evict_scan/411/" + target).c_str(), bench_evict_scan, kv, 411)
        ->Unit(benchmark::kMicrosecond);
    for (const int n : {410, 1024}) {
      benchmark::RegisterBenchmark(("softmax/" + std::to_string(n) + "/" + target).c_str(), bench_softmax, k, n)
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark(("swiglu/2816/" + target).c_str(), bench_swiglu, k, 2816)
        ->Unit(benchmark::kMicrosecond);
    for (const int kv_type : {0, 1, 2}) {
      for (const bool rank_rope : {false, true}) {
        for (const bool scattered : {false, true}) {
          const std::string name = std::string("kv_scores/") + kv_name(kv_type) + (rank_rope ? "/cache" : "/absolute") +
                                   (scattered ? "/scattered" : "/in_order") + "/64x410/" + target;
          benchmark::RegisterBenchmark(name.c_str(), bench_kv_scores, k, kv, kv_type, rank_rope, 410, scattered)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace h2o

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  h2o::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
