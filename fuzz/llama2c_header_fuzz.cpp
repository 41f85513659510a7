// libFuzzer target for llama2.c checkpoints (Llama2cCheckpoint::open): the 7-field header
// and the size check against it. Any bytes must open or throw h2o::Error. When a file
// opens, every weight pointer is checked against the layout computed here independently
// from llama2.c's run.c (memory_map_weights): inside the file, in order, and exactly
// filling it.
//
// Input: the first byte picks the mode. 0: the bytes as they are. Otherwise: the 28-byte
// header, and the rest padded (repeated) or cut to the size the header implies (when that
// is at most 1.25 MiB), so that valid headers reach the mapping of every tensor.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "format/llama2c.h"
#include "fuzz_file.h"

namespace {

constexpr uint64_t kMaxPadded = uint64_t{5} << 18;  // 1.25 MiB: stories260K.bin (1.0 MiB) fits

// Floats after the header for the seven fields, as run.c lays them out; 0 if a field is
// out of the plausible range (then the file is used as given).
uint64_t expected_floats(const int32_t h[7]) {
  const int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], seq = h[6];
  const int64_t vocab = h[5] < 0 ? -static_cast<int64_t>(h[5]) : h[5];
  if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || vocab <= 0 || seq <= 0) return 0;
  if (dim > 4096 || hidden > 16384 || layers > 64 || heads > dim || vocab > 65536 || seq > 65536) return 0;
  if (dim % heads != 0) return 0;
  const int64_t head = dim / heads, kv_dim = kv_heads * head;
  const int64_t per_layer = dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim + 3 * hidden * dim;
  const int64_t floats = vocab * dim + layers * per_layer + dim + seq * head + (h[5] < 0 ? vocab * dim : 0);
  return floats > 0 ? static_cast<uint64_t>(floats) : 0;
}

void check_layout(const h2o::Llama2cCheckpoint& ck, const uint8_t* base, size_t size) {
  const h2o::Llama2cConfig& c = ck.config();
  const h2o::Llama2cWeights& w = ck.weights();
  const auto* floats = reinterpret_cast<const float*>(base + 28);
  const uint64_t dim = c.dim, hidden = c.hidden_dim, layers = c.n_layers, vocab = c.vocab_size;
  const uint64_t head = dim / c.n_heads, kv_dim = c.n_kv_heads * head;
  uint64_t at = 0;
  const auto expect = [&](const float* p, uint64_t n) {
    if (p != floats + at) __builtin_trap();
    at += n;
  };
  expect(w.token_embedding, vocab * dim);
  expect(w.rms_att, layers * dim);
  expect(w.wq, layers * dim * dim);
  expect(w.wk, layers * kv_dim * dim);
  expect(w.wv, layers * kv_dim * dim);
  expect(w.wo, layers * dim * dim);
  expect(w.rms_ffn, layers * dim);
  expect(w.w1, layers * hidden * dim);
  expect(w.w2, layers * dim * hidden);
  expect(w.w3, layers * hidden * dim);
  expect(w.rms_final, dim);
  at += c.seq_len * head;  // freq_cis_real and freq_cis_imag, unused
  if (c.shared_classifier) {
    if (w.wcls != w.token_embedding) __builtin_trap();
  } else {
    expect(w.wcls, vocab * dim);
  }
  if (28 + at * sizeof(float) != size) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if (data[0] != 0 && bytes.size() >= 28) {
    int32_t h[7];
    std::memcpy(h, bytes.data(), sizeof h);
    const uint64_t n = expected_floats(h);
    if (n > 0 && 28 + n * 4 <= kMaxPadded) {
      const size_t want = 28 + static_cast<size_t>(n) * 4;
      if (bytes.size() > want) {
        bytes.resize(want);
      } else if (bytes.size() == 28) {
        bytes.resize(want, 0);
      } else {
        // Repeat the bytes after the header, doubling the copy each time (the source
        // [28, 28 + chunk) never overlaps the destination).
        size_t filled = bytes.size();
        bytes.resize(want);
        while (filled < want) {
          const size_t chunk = std::min(filled - 28, want - filled);
          std::memcpy(bytes.data() + filled, bytes.data() + 28, chunk);
          filled += chunk;
        }
      }
    }
  }
  const h2o::fuzz::MemFile file(bytes);
  try {
    const h2o::Llama2cCheckpoint ck = h2o::Llama2cCheckpoint::open(file.path());
    // The checkpoint maps its own copy of the file: compare offsets against that mapping's base.
    const auto* base = reinterpret_cast<const uint8_t*>(ck.weights().token_embedding) - 28;
    check_layout(ck, base, bytes.size());
  } catch (const h2o::Error&) {
  }
  return 0;
}
