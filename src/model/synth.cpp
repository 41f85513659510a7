#include "model/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <numbers>

#include "common/check.h"
#include "common/thread_pool.h"
#include "format/gguf.h"

namespace h2o {
namespace {

// The shapes of the models the speed tables are about (their published configs), and a
// small one for tests.
const std::vector<SynthShape> kShapes = {
    {"tiny", "small GQA shape for tests (~0.2M params)", 64, 192, 2, 4, 2, 512, 256, 10000.0f},
    {"tinyllama-1.1b", "TinyLlama 1.1B: GQA 32/4 heads (~1.1B params)", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f},
    {"llama2-7b", "Llama 2 7B: multi-head (~6.7B params)", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f},
    {"mha-200m", "multi-head, long context: the KV cache dominates (~0.2B params)", 1024, 2816, 12, 16, 16, 32000, 8192,
     10000.0f},
};

// Byte tokens come right after <unk>, <s>, </s>, as in the llama tokenizer.
constexpr int kFirstByteToken = 3;
constexpr int kMinVocab = kFirstByteToken + 256;
constexpr float kEmbeddingStd = 0.02f;  // "small": RMSNorm rescales the first block's input anyway

// ggml's llama_ftype for a file whose matrices are all of one type (general.file_type):
// LLAMA_FTYPE_MOSTLY_<type>, the _S variant for K-quants (every matrix of the one type).
uint32_t file_type_id(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q4_1: return 3;
    case TensorType::Q8_0: return 7;
    case TensorType::Q5_0: return 8;
    case TensorType::Q5_1: return 9;
    case TensorType::Q2_K: return 21;  // Q2_K_S
    case TensorType::Q3_K: return 11;  // Q3_K_S
    case TensorType::Q4_K: return 14;  // Q4_K_S (Q4_K_M mixes in Q6_K)
    case TensorType::Q5_K: return 16;  // Q5_K_S
    case TensorType::Q6_K: return 18;
    case TensorType::IQ4_NL: return 25;
    case TensorType::IQ4_XS: return 30;
    case TensorType::BF16: return 32;
  }
  fail("synth: tensor type {} cannot be written", traits(t).name);
}

// splitmix64: a fast, well-mixed 64-bit generator; also used to derive per-row seeds so
// that every row is the same whatever the thread count.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t row_seed(uint64_t seed, size_t tensor, uint64_t row) {
  uint64_t s = seed;
  s = splitmix64(s) ^ (static_cast<uint64_t>(tensor) << 40) ^ row;
  return splitmix64(s);
}

// dst[n] ~ normal(0, std) by Box-Muller, two values per 64-bit draw (24-bit uniforms).
void fill_normal(uint64_t state, float std, float* dst, size_t n) {
  constexpr float kTwoPi = 2.0f * std::numbers::pi_v<float>;
  constexpr float kInv24 = 1.0f / 16777216.0f;
  for (size_t i = 0; i < n; i += 2) {
    const uint64_t x = splitmix64(state);
    const float u1 = static_cast<float>((x >> 40) + 1) * kInv24;  // (0, 1]: log stays finite
    const float u2 = static_cast<float>(x & 0xFFFFFF) * kInv24;   // [0, 1)
    const float r = std * std::sqrt(-2.0f * std::log(u1));
    dst[i] = r * std::cos(kTwoPi * u2);
    if (i + 1 < n) dst[i + 1] = r * std::sin(kTwoPi * u2);
  }
}

// The synthetic vocabulary: <unk>, <s>, </s>, <0x00>..<0xFF>, then "▁" and every string
// over a 26-letter alphabet by length, each bare and with a leading "▁" (the word-start
// marker), until the vocabulary is full. Every piece's prefixes come before it, so BPE
// can merge letters into any of them; shorter pieces score higher (merge first).
struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 6 byte
};

Vocab synthetic_vocab(int vocab_size) {
  const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  const std::string_view kAlphabet = "etaoinshrdlucmfwypvbgkjqxz";
  Vocab v;
  const auto add = [&](std::string piece, float score, int32_t type) {
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, 2);
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0.0f, 6);
  const auto n = static_cast<size_t>(vocab_size);
  const auto add_normal = [&](std::string piece) {
    if (v.tokens.size() < n) add(std::move(piece), -static_cast<float>(v.tokens.size()), 1);
  };
  add_normal(kSpace);
  std::vector<size_t> digits;  // the current string, base 26, most significant first
  while (v.tokens.size() < n) {
    // Next string in (length, lexicographic) order.
    size_t d = digits.size();
    while (d > 0 && digits[d - 1] + 1 == kAlphabet.size()) digits[--d] = 0;
    if (d == 0) {
      digits.insert(digits.begin(), 0);
    } else {
      ++digits[d - 1];
    }
    std::string s;
    for (size_t x : digits) s += kAlphabet[x];
    add_normal(kSpace + s);
    add_normal(s);
  }
  return v;
}

struct TensorPlan {
  std::string name;
  int cols = 0;         // ne[0], the contiguous (input) dimension
  int rows = 0;         // ne[1]; 1 for vectors
  bool vector = false;  // norm weights: ones, F32
  float std = 0.0f;     // matrices: normal(0, std)
};

std::vector<TensorPlan> plan_tensors(const SynthShape& s) {
  const int head_dim = s.dim / s.n_heads;
  const int q_dim = s.n_heads * head_dim, kv_dim = s.n_kv_heads * head_dim;
  // normal(0, 1/sqrt(fan_in)) keeps each product's outputs at about unit variance.
  const auto mat = [](std::string name, int rows, int cols) {
    return TensorPlan{std::move(name), cols, rows, false, 1.0f / std::sqrt(static_cast<float>(cols))};
  };
  const auto vec = [](std::string name, int n) { return TensorPlan{std::move(name), n, 1, true, 0.0f}; };
  std::vector<TensorPlan> p;
  p.push_back(TensorPlan{"token_embd.weight", s.dim, s.vocab_size, false, kEmbeddingStd});
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    p.push_back(vec(b + "attn_norm.weight", s.dim));
    p.push_back(mat(b + "attn_q.weight", q_dim, s.dim));
    p.push_back(mat(b + "attn_k.weight", kv_dim, s.dim));
    p.push_back(mat(b + "attn_v.weight", kv_dim, s.dim));
    p.push_back(mat(b + "attn_output.weight", s.dim, q_dim));
    p.push_back(vec(b + "ffn_norm.weight", s.dim));
    p.push_back(mat(b + "ffn_gate.weight", s.hidden_dim, s.dim));
    p.push_back(mat(b + "ffn_up.weight", s.hidden_dim, s.dim));
    p.push_back(mat(b + "ffn_down.weight", s.dim, s.hidden_dim));
  }
  p.push_back(vec("output_norm.weight", s.dim));
  p.push_back(mat("output.weight", s.vocab_size, s.dim));
  return p;
}

void set_metadata(GgufWriter& w, const SynthShape& s, TensorType type, uint64_t seed) {
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", fmt::format("synth-{} (random weights, seed {})", s.name, seed));
  w.set_u32("general.file_type", file_type_id(type));
  const auto u32 = [](int v) { return static_cast<uint32_t>(v); };
  w.set_u32("llama.context_length", u32(s.context_length));
  w.set_u32("llama.embedding_length", u32(s.dim));
  w.set_u32("llama.block_count", u32(s.n_layers));
  w.set_u32("llama.feed_forward_length", u32(s.hidden_dim));
  w.set_u32("llama.rope.dimension_count", u32(s.dim / s.n_heads));
  w.set_u32("llama.attention.head_count", u32(s.n_heads));
  w.set_u32("llama.attention.head_count_kv", u32(s.n_kv_heads));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32("llama.rope.freq_base", s.rope_base);
  const Vocab v = synthetic_vocab(s.vocab_size);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_f32_array("tokenizer.ggml.scores", v.scores);
  w.set_i32_array("tokenizer.ggml.token_type", v.types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
}

// A caller-made shape must make a model Model::load accepts.
void check_shape(const SynthShape& s) {
  if (s.dim <= 0 || s.hidden_dim <= 0 || s.n_layers <= 0 || s.n_heads <= 0 || s.n_kv_heads <= 0 ||
      s.context_length <= 0) {
    fail("shape {}: sizes must be positive", s.name);
  }
  if (s.dim % s.n_heads != 0 || s.n_heads % s.n_kv_heads != 0) {
    fail("shape {}: dim {} must divide into {} heads, and those into {} KV heads", s.name, s.dim, s.n_heads,
         s.n_kv_heads);
  }
  if (s.vocab_size < kMinVocab) fail("shape {}: vocab_size {} is below {}", s.name, s.vocab_size, kMinVocab);
}

}  // namespace

uint64_t SynthShape::n_params() const {
  const uint64_t d = static_cast<uint64_t>(dim), h = static_cast<uint64_t>(hidden_dim),
                 kv = static_cast<uint64_t>(dim / n_heads * n_kv_heads), v = static_cast<uint64_t>(vocab_size);
  const uint64_t layer = 2 * d + d * d * 2 + d * kv * 2 + 3 * d * h;  // norms, q/o, k/v, ffn
  return 2 * v * d + d + static_cast<uint64_t>(n_layers) * layer;
}

const std::vector<SynthShape>& synth_shapes() { return kShapes; }

const SynthShape& find_synth_shape(std::string_view name) {
  for (const auto& s : kShapes) {
    if (s.name == name) return s;
  }
  std::string names;
  for (const auto& s : kShapes) names += (names.empty() ? "" : ", ") + std::string(s.name);
  fail("unknown shape '{}' (known: {})", name, names);
}

TensorType parse_synth_type(std::string_view name) {
  if (const auto t = find_type(name)) return *t;
  std::string names;
  for (const TypeInfo* t : all_types()) {
    std::string n(t->name);
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    names += (names.empty() ? "" : ", ") + n;
  }
  fail("unknown tensor type '{}' (choose {})", name, names);
}

SynthResult synthesize_model(const SynthOptions& opts, const SynthProgress& progress) {
  if (opts.custom_shape) check_shape(*opts.custom_shape);
  const SynthShape& shape = opts.custom_shape ? *opts.custom_shape : find_synth_shape(opts.shape);
  if (opts.path.empty()) fail("synth: no output file given (-o)");
  if (opts.threads < 1) fail("synth: threads must be at least 1, got {}", opts.threads);
  const TypeTraits& tt = traits(opts.type);
  const std::vector<TensorPlan> plan = plan_tensors(shape);
  for (const auto& t : plan) {
    if (!t.vector && t.cols % static_cast<int>(tt.block_elems) != 0) {
      fail(
          "shape {}: {} has rows of {} values, not a multiple of the {} block size {} (use a wider shape or another "
          "type)",
          shape.name, t.name, t.cols, tt.name, tt.block_elems);
    }
  }

  GgufWriter w;
  set_metadata(w, shape, opts.type, opts.seed);
  SynthResult res;
  res.shape = &shape;
  res.n_tensors = plan.size();
  for (const auto& t : plan) {
    const TensorType type = t.vector ? TensorType::F32 : opts.type;
    std::vector<uint64_t> ne = {static_cast<uint64_t>(t.cols)};
    if (!t.vector) ne.push_back(static_cast<uint64_t>(t.rows));
    w.declare_tensor(t.name, ne, type);
    res.n_params += static_cast<uint64_t>(t.cols) * static_cast<uint64_t>(t.rows);
    res.tensor_bytes += row_bytes(type, static_cast<size_t>(t.cols)) * static_cast<size_t>(t.rows);
  }

  ThreadPool pool(opts.threads);
  std::vector<uint8_t> chunk;
  uint64_t done = 0;
  if (progress) progress(0, res.tensor_bytes);
  w.write_streamed(opts.path, [&](size_t index, const GgufWriter::DataSink& sink) {
    const TensorPlan& t = plan[index];
    const auto cols = static_cast<size_t>(t.cols);
    if (t.vector) {  // norm weights: ones
      const std::vector<float> ones(cols, 1.0f);
      sink(std::span(reinterpret_cast<const uint8_t*>(ones.data()), cols * sizeof(float)));
      done += cols * sizeof(float);
      return;
    }
    const size_t rb = row_bytes(opts.type, cols);
    // About 1M values per chunk: enough work to share among threads, a few MiB of memory.
    const size_t rows_per_chunk = std::max<size_t>(1, (size_t{1} << 20) / cols);
    const auto rows = static_cast<size_t>(t.rows);
    for (size_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
      const size_t n = std::min(rows_per_chunk, rows - r0);
      chunk.resize(n * rb);
      pool.parallel_for(n, [&](size_t b, size_t e) {
        std::vector<float> row(cols);
        for (size_t r = b; r < e; ++r) {
          fill_normal(row_seed(opts.seed, index, r0 + r), t.std, row.data(), cols);
          quantize_row(opts.type, row.data(), chunk.data() + r * rb, cols);
        }
      });
      sink(chunk);
      done += chunk.size();
      if (progress) progress(done, res.tensor_bytes);
    }
  });
  std::error_code ec;
  const auto size = std::filesystem::file_size(opts.path, ec);
  res.file_bytes = ec ? 0 : static_cast<uint64_t>(size);
  return res;
}

}  // namespace h2o
