#include "format/llama2c.h"

#include <bit>
#include <cstring>
#include <span>

#include "common/check.h"
#include "format/mapped_file.h"

namespace h2o {

static_assert(std::endian::native == std::endian::little, "h2o assumes a little-endian host");

namespace {

constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export.py v1/v2 files
constexpr uint32_t kGgufMagic = 0x46554747;       // "GGUF"
constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

// Generous limits: far beyond any llama2.c-sized model, small enough that every size
// computed below fits comfortably in 64 bits.
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxHidden = 1 << 18;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxSeqLen = 1 << 22;

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void check_range(const std::string& path, std::string_view field, int64_t v, int64_t max) {
  if (v < 1 || v > max) {
    fail("{}: header field {} = {} is out of range (1 to {}); not a llama2.c checkpoint?", path,
         field, v, max);
  }
}

Llama2cConfig parse_header(const std::string& path, std::span<const uint8_t> bytes) {
  int32_t h[7];
  std::memcpy(h, bytes.data(), kHeaderBytes);
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  const int64_t vocab = h[5];  // widened: -INT32_MIN does not fit in int32
  c.seq_len = h[6];
  c.shared_classifier = vocab > 0;
  check_range(path, "dim", c.dim, kMaxDim);
  check_range(path, "hidden_dim", c.hidden_dim, kMaxHidden);
  check_range(path, "n_layers", c.n_layers, kMaxLayers);
  check_range(path, "n_heads", c.n_heads, c.dim);
  check_range(path, "n_kv_heads", c.n_kv_heads, c.n_heads);
  check_range(path, "|vocab_size|", vocab < 0 ? -vocab : vocab, kMaxVocab);
  check_range(path, "seq_len", c.seq_len, kMaxSeqLen);
  c.vocab_size = static_cast<int32_t>(vocab < 0 ? -vocab : vocab);
  if (c.dim % c.n_heads != 0) fail("{}: n_heads {} does not divide dim {}", path, c.n_heads, c.dim);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail("{}: n_kv_heads {} does not divide n_heads {}", path, c.n_kv_heads, c.n_heads);
  }
  // RoPE rotates pairs, and run.c skips freq_cis as two halves of seq_len*head_size/2.
  if ((c.dim / c.n_heads) % 2 != 0) {
    fail("{}: head size {} (dim {} / n_heads {}) is odd; RoPE needs an even head size", path,
         c.dim / c.n_heads, c.dim, c.n_heads);
  }
  return c;
}

// Walks the fp32 arrays in run.c's order (memory_map_weights), recording where each starts.
class Layout {
 public:
  explicit Layout(const float* base) : base_(base) {}
  const float* take(uint64_t n_floats) {
    const float* p = base_ == nullptr ? nullptr : base_ + used_;
    used_ += n_floats;
    return p;
  }
  uint64_t used() const { return used_; }

 private:
  const float* base_;
  uint64_t used_ = 0;
};

// Fills `w` (when base is non-null) and returns the number of floats after the header.
uint64_t map_weights(const Llama2cConfig& c, const float* base, Llama2cWeights* w) {
  const uint64_t dim = static_cast<uint64_t>(c.dim);
  const uint64_t hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t layers = static_cast<uint64_t>(c.n_layers);
  const uint64_t vocab = static_cast<uint64_t>(c.vocab_size);
  const uint64_t head_size = dim / static_cast<uint64_t>(c.n_heads);
  const uint64_t q_dim = static_cast<uint64_t>(c.n_heads) * head_size;
  const uint64_t kv_dim = static_cast<uint64_t>(c.n_kv_heads) * head_size;
  Layout l(base);
  Llama2cWeights out;
  out.token_embedding = l.take(vocab * dim);
  out.rms_att = l.take(layers * dim);
  out.wq = l.take(layers * q_dim * dim);
  out.wk = l.take(layers * kv_dim * dim);
  out.wv = l.take(layers * kv_dim * dim);
  out.wo = l.take(layers * dim * q_dim);
  out.rms_ffn = l.take(layers * dim);
  out.w1 = l.take(layers * hidden * dim);
  out.w2 = l.take(layers * dim * hidden);
  out.w3 = l.take(layers * hidden * dim);
  out.rms_final = l.take(dim);
  l.take(static_cast<uint64_t>(c.seq_len) * head_size);  // legacy freq_cis_real + freq_cis_imag
  out.wcls = c.shared_classifier ? out.token_embedding : l.take(vocab * dim);
  if (w != nullptr) *w = out;
  return l.used();
}

}  // namespace

Llama2cCheckpoint Llama2cCheckpoint::open(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  const std::span<const uint8_t> bytes = file->bytes();
  if (bytes.size() >= 4 && load_u32(bytes.data()) == kVersionedMagic) {
    fail("{}: llama2.c version 1/2 checkpoints (magic \"ak42\") are not supported; export the "
         "legacy version 0 format",
         path);
  }
  if (bytes.size() >= 4 && load_u32(bytes.data()) == kGgufMagic) {
    fail("{}: is a GGUF file, not a llama2.c checkpoint", path);
  }
  if (bytes.size() < kHeaderBytes) {
    fail("{}: file is {} bytes, too short for the {}-byte llama2.c header", path, bytes.size(),
         kHeaderBytes);
  }
  Llama2cCheckpoint ck;
  ck.path_ = path;
  ck.config_ = parse_header(path, bytes);
  const uint64_t expected = kHeaderBytes + map_weights(ck.config_, nullptr, nullptr) * sizeof(float);
  if (bytes.size() != expected) {
    const auto& c = ck.config_;
    fail("{}: file is {} bytes but a llama2.c checkpoint with dim {}, hidden_dim {}, n_layers {}, "
         "n_heads {}, n_kv_heads {}, vocab {}{}, seq_len {} must be exactly {} bytes ({})",
         path, bytes.size(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
         c.vocab_size, c.shared_classifier ? "" : " (separate classifier)", c.seq_len, expected,
         bytes.size() < expected ? "truncated" : "trailing data");
  }
  // The mapping is page-aligned and the header is 28 bytes, so the floats are 4-aligned.
  const auto* base = reinterpret_cast<const float*>(bytes.data() + kHeaderBytes);
  map_weights(ck.config_, base, &ck.weights_);
  ck.file_ = std::move(file);
  return ck;
}

}  // namespace h2o
