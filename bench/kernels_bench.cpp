// Microbenchmarks of the kernels (Google Benchmark), on every SIMD target this CPU runs
// ("scalar" is the reference code, the engine's path before SIMD):
//   matvec/<type>/<rows>x<cols>/<target>   one token (kMatvecShapes), every registered type
//   gemm64/<type>/2048x2048/<target>       64 tokens (prefill)
//   attn_dot/<head_dim>x<slots>/<target>   q.k over 1024 slots, then the value accumulation
// One thread. items/s counts multiply-adds; bytes/s counts weight bytes read.
//
//   build/h2o_kernels_bench --benchmark_filter='matvec/Q8_0'

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/thread_pool.h"
#include "format/packed_quant.h"
#include "format/tensor_type.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "format/matrix.h"

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
    case TensorType::Q2_K: return {80, 82};
    case TensorType::Q3_K: return {108, 108};
    case TensorType::Q6_K: return {208, 208};
    case TensorType::Q4_1:
    case TensorType::Q5_1:
    case TensorType::Q4_K:
    case TensorType::Q5_K: return {0, 2};
    default: return {0, 0};
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

// rows x cols: TinyLlama's wq/wo, w_gate/w_up and output (larger than the L3 cache: read
// from memory, as decode reads every matrix), then two small ones (cache-resident).
constexpr std::pair<int, int> kMatvecShapes[] = {{2048, 2048}, {5632, 2048}, {32000, 2048}, {768, 256}, {256, 768}};

void register_all() {
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
    }
    benchmark::RegisterBenchmark(("attn_dot/64x1024/" + target).c_str(), bench_attention, k, 64, 1024)
        ->Unit(benchmark::kMicrosecond);
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
