// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <map>
#include <span>

#include "common/check.h"
#include "common/thread_pool.h"
#include "format/gguf.h"

namespace h2o {
namespace {

using T = TensorType;

// llama.cpp's ftypes whose tensor types this engine runs (include/llama.h).
const std::vector<QuantMix> kMixes = {
    {"F32", 0, T::F32},       {"F16", 1, T::F16},       {"BF16", 32, T::BF16},    {"Q4_0", 2, T::Q4_0},
    {"Q4_1", 3, T::Q4_1},     {"Q5_0", 8, T::Q5_0},     {"Q5_1", 9, T::Q5_1},     {"Q8_0", 7, T::Q8_0},
    {"Q2_K", 10, T::Q2_K},    {"Q2_K_S", 21, T::Q2_K},  {"Q3_K_S", 11, T::Q3_K},  {"Q3_K_M", 12, T::Q3_K},
    {"Q3_K_L", 13, T::Q3_K},  {"Q4_K_S", 14, T::Q4_K},  {"Q4_K_M", 15, T::Q4_K},  {"Q5_K_S", 16, T::Q5_K},
    {"Q5_K_M", 17, T::Q5_K},  {"Q6_K", 18, T::Q6_K},    {"IQ4_NL", 25, T::IQ4_NL}, {"IQ4_XS", 30, T::IQ4_XS},
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// llama-quant.cpp's tensor categories (names matched as it matches them).
enum class Category { Output, TokenEmbd, AttnQkv, AttnKvB, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

Category category_of(const std::string& name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::TokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::AttnQkv;
  if (contains(name, "attn_kv_b.weight")) return Category::AttnKvB;
  if (contains(name, "attn_v.weight")) return Category::AttnV;
  if (contains(name, "attn_k.weight")) return Category::AttnK;
  if (contains(name, "attn_q.weight")) return Category::AttnQ;
  if (contains(name, "attn_output.weight")) return Category::AttnOutput;
  if (contains(name, "ffn_up")) return Category::FfnUp;
  if (contains(name, "ffn_gate")) return Category::FfnGate;
  if (contains(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

bool is_attn_v_like(Category c) { return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB; }

// llama-quant.cpp's tensor_allows_quantization, for the tensors of text models.
bool allows_quantization(const GgufTensor& t) {
  size_t dims = t.ne.size();
  while (dims > 1 && t.ne[dims - 1] == 1) --dims;  // ggml_n_dims ignores trailing ones
  if (dims < 2) return false;
  const std::string& n = t.name;
  if (n.size() < 6 || n.compare(n.size() - 6, 6, "weight") != 0) return false;
  for (const std::string_view never :
       {"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "time_mix_", "attn_rel_b.weight", ".position_embd", ".rel_pos",
        ".patch_embd"}) {
    if (contains(n, never)) return false;
  }
  return n != "position_embd.weight" && n != "token_types.weight";
}

bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool is_quantized(TensorType t) { return traits(t).block_elems > 1; }

struct MixState {
  uint32_t ftype = 0;
  bool tied = true;  // no output.weight: the token embedding is the output
  int n_gqa = 1;
  int n_layer = 0;
  int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0;
};

// llama_tensor_get_type_impl for dense, non-Falcon models without an importance matrix.
TensorType mix_type(MixState& s, TensorType type, const GgufTensor& t, Category cat, std::string& note) {
  const uint32_t f = s.ftype;
  constexpr uint32_t Q2_K = 10, Q2_K_S = 21, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_M = 17,
                     IQ4_NL = 25, IQ4_XS = 30;
  const auto set = [&](TensorType to, std::string why) {
    if (to != type) note = std::move(why);
    type = to;
  };
  if (cat == Category::Output || (s.tied && cat == Category::TokenEmbd)) {
    const std::string who = cat == Category::Output ? "output" : "tied embedding";
    if (t.ne[0] % traits(type).block_elems != 0) {
      set(T::Q8_0, who + ", row not a multiple of " + std::to_string(traits(type).block_elems));
    } else if (type != T::Q8_0) {
      set(T::Q6_K, who);
    }
    return type;
  }
  if (cat == Category::TokenEmbd) return type;
  if (is_attn_v_like(cat)) {
    if (f == Q2_K) {
      set(s.n_gqa >= 4 ? T::Q4_K : T::Q3_K, "attn_v");
    } else if (f == Q2_K_S && s.n_gqa >= 4) {
      set(T::Q4_K, "attn_v, GQA");
    } else if (f == Q3_K_M) {
      set(s.i_attn_v < 2 ? T::Q5_K : T::Q4_K, "attn_v");
    } else if (f == Q3_K_L) {
      set(T::Q5_K, "attn_v");
    } else if ((f == IQ4_NL || f == IQ4_XS) && s.n_gqa >= 4) {
      set(T::Q5_K, "attn_v, GQA");
    } else if ((f == Q4_K_M || f == Q5_K_M) && use_more_bits(s.i_attn_v, s.n_attn_v)) {
      set(T::Q6_K, "attn_v, more bits");
    } else if (f == Q4_K_S && s.i_attn_v < 4) {
      set(T::Q5_K, "attn_v, first layers");
    }
    ++s.i_attn_v;
    return type;
  }
  if (cat == Category::FfnDown) {
    const int i = s.i_ffn_down, n = s.n_layer;
    if (f == Q2_K) {
      set(T::Q3_K, "ffn_down");
    } else if (f == Q2_K_S) {
      if (i < n / 8) set(T::Q4_K, "ffn_down, first layers");
    } else if (f == Q3_K_M) {
      set(i < n / 16 ? T::Q5_K : T::Q4_K, "ffn_down");
    } else if (f == Q3_K_L) {
      set(T::Q5_K, "ffn_down");
    } else if (f == Q4_K_M) {
      if (use_more_bits(i, n)) set(T::Q6_K, "ffn_down, more bits");
    } else if (i < n / 8 && (f == IQ4_NL || f == IQ4_XS)) {
      set(T::Q5_K, "ffn_down, first layers");
    } else if (f == Q5_K_M && use_more_bits(i, n)) {
      set(T::Q6_K, "ffn_down, more bits");
    } else if (f == Q4_K_S && i < n / 8) {
      set(T::Q5_K, "ffn_down, first layers");
    }
    ++s.i_ffn_down;
    return type;
  }
  if (cat == Category::AttnOutput) {
    if (f == Q2_K) set(T::Q3_K, "attn_output");
    if (f == Q3_K_M) set(T::Q4_K, "attn_output");
    if (f == Q3_K_L) set(T::Q5_K, "attn_output");
  }
  return type;
}

// tensor_type_fallback: a type whose block does not divide the row.
TensorType fallback(TensorType type, uint64_t ne0, std::string& note) {
  if (ne0 % traits(type).block_elems == 0) return type;
  TensorType to = type;
  switch (type) {
    case T::Q2_K:
    case T::Q3_K: to = T::Q4_0; break;
    case T::Q4_K: to = T::Q5_0; break;
    case T::Q5_K: to = T::Q5_1; break;
    case T::Q6_K: to = T::Q8_0; break;
    case T::IQ4_XS: to = T::IQ4_NL; break;
    default: break;
  }
  if (ne0 % traits(to).block_elems != 0) to = T::F16;
  note = fmt::format("fallback: {} values per row is not a multiple of {}'s block {}", ne0, traits(type).name,
                     traits(type).block_elems);
  return to;
}

int64_t arch_int(const GgufFile& in, const std::string& arch, const char* key, int64_t otherwise) {
  const GgufValue* v = in.find(arch + "." + key);
  if (v == nullptr || !v->is_integer()) return otherwise;
  return v->as_int(arch + "." + key);
}

}  // namespace

const std::vector<QuantMix>& quant_mixes() { return kMixes; }

const QuantMix& find_quant_mix(std::string_view name) {
  std::string want = upper(name);
  if (want == "Q4_K") want = "Q4_K_M";  // llama-quantize's aliases
  if (want == "Q5_K") want = "Q5_K_M";
  if (want == "Q3_K") want = "Q3_K_M";
  for (const QuantMix& m : kMixes) {
    if (m.name == want) return m;
  }
  std::string names;
  for (const QuantMix& m : kMixes) names += (names.empty() ? "" : ", ") + std::string(m.name);
  fail("unknown quantization type '{}' (choose {}, any case)", name, names);
}

QuantizePlan plan_quantization(const GgufFile& in, std::string_view mix_name, const QuantizeOptions& opts) {
  QuantizePlan plan;
  plan.mix = find_quant_mix(mix_name);
  MixState s;
  s.ftype = plan.mix.ftype;
  const std::string arch = in.get_string("general.architecture").value_or("llama");
  const int64_t heads = arch_int(in, arch, "attention.head_count", 1);
  const int64_t kv_heads = arch_int(in, arch, "attention.head_count_kv", heads);
  s.n_gqa = kv_heads > 0 ? static_cast<int>(heads / kv_heads) : 1;
  s.n_layer = static_cast<int>(arch_int(in, arch, "block_count", 0));
  for (const GgufTensor& t : in.tensors()) {
    const Category c = category_of(t.name);
    if (is_attn_v_like(c)) ++s.n_attn_v;
    if (c == Category::Output) s.tied = false;
  }
  const bool base_quantized = is_quantized(plan.mix.base);
  for (const GgufTensor& t : in.tensors()) {
    TensorPlan p;
    p.name = t.name;
    p.ne = t.ne;
    p.from = t.type;
    p.to = t.type;
    if (allows_quantization(t)) {
      p.to = plan.mix.base;
      if (base_quantized) {
        if (!opts.pure) p.to = mix_type(s, p.to, t, category_of(t.name), p.note);
        p.to = fallback(p.to, t.ne[0], p.note);
      }
    }
    if (p.to != p.from && is_quantized(p.from) && !opts.allow_requantize) {
      fail("{}: tensor {} is already {}; requantizing it to {} loses precision (pass --allow-requantize to do it "
           "anyway)",
           in.source_name(), t.name, traits(p.from).name, traits(p.to).name);
    }
    uint64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    p.bytes_in = t.n_bytes;
    p.bytes_out = rows * row_bytes(p.to, static_cast<size_t>(t.ne[0]));
    plan.bytes_in += p.bytes_in;
    plan.bytes_out += p.bytes_out;
    plan.n_elements += t.n_elements;
    plan.tensors.push_back(std::move(p));
  }
  return plan;
}

std::string plan_to_text(const QuantizePlan& plan) {
  size_t name_w = 4, shape_w = 5;
  const auto shape = [](const std::vector<uint64_t>& ne) {
    std::string s;
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
    return s;
  };
  for (const auto& t : plan.tensors) {
    name_w = std::max(name_w, t.name.size());
    shape_w = std::max(shape_w, shape(t.ne).size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:>6} -> {:<6}  {:>12}  {}\n", "NAME", name_w, "SHAPE", shape_w, "FROM",
                                "TO", "BYTES", "NOTE");
  for (const auto& t : plan.tensors) {
    out += fmt::format("{:<{}}  {:<{}}  {:>6} -> {:<6}  {:>12}  {}\n", t.name, name_w, shape(t.ne), shape_w,
                       traits(t.from).name, traits(t.to).name, t.bytes_out, t.note);
  }
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  for (const auto& t : plan.tensors) {
    auto& e = by_type[std::string(traits(t.to).name)];
    ++e.first;
    e.second += t.bytes_out;
  }
  out += fmt::format("\n{} ({} = llama_ftype {}): {} tensors, {} parameters\n", plan.mix.name, traits(plan.mix.base).name,
                     plan.mix.ftype, plan.tensors.size(), plan.n_elements);
  for (const auto& [name, e] : by_type) {
    out += fmt::format("  {:<7} {:>4} tensors  {:>8.2f} MiB\n", name, e.first, static_cast<double>(e.second) / 1048576.0);
  }
  const double bpw = plan.n_elements ? 8.0 * static_cast<double>(plan.bytes_out) / static_cast<double>(plan.n_elements) : 0;
  out += fmt::format("tensor data: {:.2f} MiB -> {:.2f} MiB ({:.3f} bits per weight)\n",
                     static_cast<double>(plan.bytes_in) / 1048576.0, static_cast<double>(plan.bytes_out) / 1048576.0, bpw);
  return out;
}

void write_quantized(const GgufFile& in, const QuantizePlan& plan, const std::string& path, int threads,
                     const std::function<void(uint64_t, uint64_t)>& progress) {
  if (threads < 1) fail("quantize: threads must be at least 1, got {}", threads);
  GgufWriter w(in.alignment());
  for (const std::string& key : in.key_order()) {
    if (key == "general.alignment") continue;  // the writer records its own
    w.set(key, *in.find(key));
  }
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", plan.mix.ftype);
  for (const TensorPlan& t : plan.tensors) w.declare_tensor(t.name, t.ne, t.to);

  ThreadPool pool(threads);
  uint64_t done = 0;
  std::vector<uint8_t> chunk;
  if (progress) progress(0, plan.bytes_out);
  w.write_streamed(path, [&](size_t index, const GgufWriter::DataSink& sink) {
    const TensorPlan& p = plan.tensors[index];
    const GgufTensor& t = in.tensors()[index];
    if (p.to == p.from) {  // copied as stored
      sink(std::span(t.data, t.n_bytes));
      done += t.n_bytes;
      if (progress) progress(done, plan.bytes_out);
      return;
    }
    const auto cols = static_cast<size_t>(t.ne[0]);
    const size_t rows = t.n_elements / std::max<size_t>(cols, 1);
    const size_t in_rb = row_bytes(p.from, cols), out_rb = row_bytes(p.to, cols);
    // About 1M values per chunk: enough work to share among threads, a few MiB of memory.
    const size_t rows_per_chunk = std::max<size_t>(1, (size_t{1} << 20) / std::max<size_t>(cols, 1));
    for (size_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
      const size_t n = std::min(rows_per_chunk, rows - r0);
      chunk.assign(n * out_rb, 0);
      pool.parallel_for(
          n,
          [&](size_t b, size_t e) {
            std::vector<float> row(cols);
            for (size_t r = b; r < e; ++r) {
              dequantize_row(p.from, t.data + (r0 + r) * in_rb, row.data(), cols);
              try {
                quantize_row(p.to, row.data(), chunk.data() + r * out_rb, cols);
              } catch (const Error& err) {
                fail("{}: tensor {} row {}: {}", in.source_name(), t.name, r0 + r, err.what());
              }
            }
          },
          n * cols * 64);
      sink(chunk);
      done += chunk.size();
      if (progress) progress(done, plan.bytes_out);
    }
  });
}

}  // namespace h2o
