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
#include "model/architecture.h"
#include "model/architectures/llama_family.h"

namespace h2o {
namespace {

// The shapes of the models the speed tables are about (their published configs,
// shared/docs/model-families.md §5), and a small one for tests.
const std::vector<SynthShape> kShapes = {
    {.name = "tiny", .description = "small GQA shape for tests (~0.2M params)", .dim = 64, .hidden_dim = 192,
     .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 512, .context_length = 256},
    {.name = "tinyllama-1.1b", .description = "TinyLlama 1.1B: GQA 32/4 heads (~1.1B params)", .dim = 2048,
     .hidden_dim = 5632, .n_layers = 22, .n_heads = 32, .n_kv_heads = 4, .vocab_size = 32000, .context_length = 2048},
    {.name = "llama2-7b", .description = "Llama 2 7B: multi-head (~6.7B params)", .dim = 4096, .hidden_dim = 11008,
     .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .vocab_size = 32000, .context_length = 4096},
    {.name = "mha-200m", .description = "multi-head, long context: the KV cache dominates (~0.2B params)",
     .dim = 1024, .hidden_dim = 2816, .n_layers = 12, .n_heads = 16, .n_kv_heads = 16, .vocab_size = 32000,
     .context_length = 8192},
    {.name = "llama3.2-1b", .description = "Llama 3.2 1B: GQA 32/8, tied head, Llama 3 RoPE factors (~1.2B params)",
     .dim = 2048, .hidden_dim = 8192, .n_layers = 16, .n_heads = 32, .n_kv_heads = 8, .vocab_size = 128256,
     .context_length = 131072, .rope_base = 500000.0f, .tied = true, .llama3_rope = true},
    {.name = "qwen2.5-0.5b", .description = "Qwen2.5 0.5B: GQA 14/2, q/k/v biases, tied (~0.5B params)", .arch = "qwen2",
     .dim = 896, .hidden_dim = 4864, .n_layers = 24, .n_heads = 14, .n_kv_heads = 2, .vocab_size = 151936,
     .context_length = 32768, .rope_base = 1000000.0f, .tied = true},
    {.name = "smollm2-360m", .description = "SmolLM2 360M: GQA 15/5, tied (~0.36B params)", .dim = 960,
     .hidden_dim = 2560, .n_layers = 32, .n_heads = 15, .n_kv_heads = 5, .vocab_size = 49152, .context_length = 8192,
     .rope_base = 100000.0f, .tied = true},
    {.name = "pythia-160m", .description = "Pythia 160M: GPT-NeoX, parallel residual, 16 rotary dims (~0.16B params)",
     .arch = "gptneox", .dim = 768,
     .hidden_dim = 3072, .n_layers = 12, .n_heads = 12, .n_kv_heads = 12, .vocab_size = 50304,
     .context_length = 2048, .rope_dim = 16},
    {.name = "opt-1.3b", .description = "OPT 1.3B: learned positions, LayerNorm, ReLU, tied (~1.3B params)",
     .arch = "opt", .dim = 2048, .hidden_dim = 8192, .n_layers = 24, .n_heads = 32, .n_kv_heads = 32,
     .vocab_size = 50272, .context_length = 2048, .tied = true},
    {.name = "opt-6.7b", .description = "OPT 6.7B: the H2O paper's throughput model (~6.7B params)", .arch = "opt",
     .dim = 4096, .hidden_dim = 16384, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .vocab_size = 50272,
     .context_length = 2048, .tied = true},
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
  bool vector = false;  // F32 vectors: norm weights (ones), biases (zeros), rope_freqs
  float std = 0.0f;     // matrices: normal(0, std)
  std::vector<float> values;  // vectors: their values
};

bool is_bias(const TensorRef& r) {
  using L = LayerRole;
  if (!r.per_layer) return r.model_role == ModelRole::OutputNormBias || r.model_role == ModelRole::OutputBias;
  switch (r.layer_role) {
    case L::AttnNormBias: case L::AttnQBias: case L::AttnKBias: case L::AttnVBias: case L::AttnQKVBias:
    case L::AttnOutBias: case L::FfnNormBias: case L::FfnGateBias: case L::FfnUpBias: case L::FfnDownBias:
      return true;
    default:
      return false;
  }
}

// The architecture's tensor table for this shape: every required tensor, the head only
// when untied, rope_freqs only for the Llama 3 shapes, optional biases left out.
std::vector<TensorPlan> plan_tensors(const SynthShape& s) {
  const ModelConfig c = s.config();
  std::vector<TensorPlan> p;
  for_each_tensor(find_architecture(s.arch), c, [&](const TensorRef& r) {
    const bool rope_freqs = !r.per_layer && r.model_role == ModelRole::RopeFreqs;
    const bool head = !r.per_layer && r.model_role == ModelRole::Output;
    // A final norm is optional only for OPT-350m's post-LN layout: always written here.
    const bool final_norm =
        !r.per_layer && (r.model_role == ModelRole::OutputNorm || r.model_role == ModelRole::OutputNormBias);
    if (rope_freqs ? !s.llama3_rope : head ? s.tied : (r.optional && !final_norm)) return;
    TensorPlan t{r.gguf_name, static_cast<int>(r.shape.cols), static_cast<int>(r.shape.rows),
                 r.kind == TensorKind::Vector, 0.0f, {}};
    if (t.vector) {
      t.values.assign(static_cast<size_t>(t.cols), is_bias(r) ? 0.0f : 1.0f);
      if (rope_freqs) t.values = llama3_rope_factors(c.rope_dim, c.rope_base, 32, 1, 4, 8192);  // Llama 3.2's
    } else {
      const bool embedding =
          !r.per_layer && (r.model_role == ModelRole::TokenEmbd || r.model_role == ModelRole::PosEmbd);
      // normal(0, 1/sqrt(fan_in)) keeps each product's outputs at about unit variance.
      t.std = embedding ? kEmbeddingStd : 1.0f / std::sqrt(static_cast<float>(t.cols));
    }
    p.push_back(std::move(t));
  });
  return p;
}

void set_metadata(GgufWriter& w, const SynthShape& s, TensorType type, uint64_t seed) {
  const ModelConfig c = s.config();
  w.set_string("general.architecture", c.arch);
  w.set_string("general.name", fmt::format("synth-{} (random weights, seed {})", s.name, seed));
  w.set_u32("general.file_type", file_type_id(type));
  find_architecture(s.arch).write_gguf(c, w);
  const Vocab v = synthetic_vocab(s.vocab_size);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
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

ModelConfig SynthShape::config() const {
  ModelConfig c;
  c.arch = std::string(arch);
  c.dim = dim;
  c.embed_dim = dim;
  c.hidden_dim = hidden_dim;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = n_heads > 0 ? dim / n_heads : 0;
  c.vocab_size = vocab_size;
  c.context_length = context_length;
  c.rope_dim = rope_dim > 0 ? rope_dim : c.head_dim;
  c.rope_base = rope_base;
  c.parallel_residual = true;
  if (arch == "opt") {  // learned positions at row p + 2, no rotary
    c.rope_dim = 0;
    c.position_offset = 2;
  }
  return c;
}

uint64_t SynthShape::n_params() const {
  uint64_t n = 0;
  for (const TensorPlan& t : plan_tensors(*this)) n += static_cast<uint64_t>(t.cols) * static_cast<uint64_t>(t.rows);
  return n;
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
    if (t.vector) {
      sink(std::span(reinterpret_cast<const uint8_t*>(t.values.data()), cols * sizeof(float)));
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
