// Writes the fuzzers' seed corpora (fuzz/corpus/<target>/) from the real files in
// ../shared/models, small enough to keep in the repository:
//   - stories260K cut down to one layer, a 260-token vocabulary (the control tokens, the
//     256 byte tokens and the first merge) and narrow matrices (GGUF F32 and Q8_0, and a
//     llama2.c checkpoint with its tokenizer.bin), real weights sliced from the original;
//   - the metadata of the real GGUF file, and the real tok512.bin;
//   - Q4_K and Q6_K blocks quantized from real weights;
//   - request bodies, prompt files and token streams like the tests'.
// Run once after changing a format: make_fuzz_seeds ../shared/models fuzz/corpus
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "common/text_file.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/tensor_type.h"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

constexpr int kVocab = 260;  // <unk> <s> </s>, 256 byte tokens, the first merge

void write(const fs::path& dir, const std::string& name, std::span<const uint8_t> bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
void write(const fs::path& dir, const std::string& name, const std::string& text) {
  write(dir, name, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

template <typename T>
void append(Bytes& b, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}

// Rows [0, rows) and columns [0, cols) of an F32 matrix stored [src_rows][src_cols].
std::vector<float> slice(const float* src, size_t src_cols, size_t rows, size_t cols) {
  std::vector<float> out;
  for (size_t r = 0; r < rows; ++r) out.insert(out.end(), src + r * src_cols, src + r * src_cols + cols);
  return out;
}

Bytes as_bytes(const std::vector<float>& v, h2o::TensorType t) {
  Bytes b(h2o::row_bytes(t, v.size()));
  h2o::quantize_row(t, v.data(), b.data(), v.size());
  return b;
}

// stories260K as a one-layer GGUF with `dim`, `hidden` and `heads`/`kv_heads`; matrices of type `t`.
Bytes tiny_gguf(const h2o::GgufFile& src, int dim, int hidden, int heads, int kv_heads, h2o::TensorType t) {
  h2o::GgufWriter w;
  for (const std::string& key : src.key_order()) {
    const h2o::GgufValue& v = *src.find(key);
    if (v.type != h2o::GgufValueType::ARRAY) {
      w.set(key, v);
      continue;
    }
    h2o::GgufArray a;  // tokenizer arrays: the first kVocab entries
    const h2o::GgufArray& full = v.as_array(key);
    a.elem_type = full.elem_type;
    for (size_t i = 0; i < full.items.size() && i < kVocab; ++i) a.items.push_back(full.items[i].value());
    w.set(key, h2o::GgufValue{h2o::GgufValueType::ARRAY, std::move(a)});
  }
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(dim));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(hidden));
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(kv_heads));
  w.set_u32("llama.context_length", 64);
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(dim / heads));
  const int kv_dim = dim / heads * kv_heads;
  const auto add = [&](const std::string& name, int rows, int cols, h2o::TensorType type) {
    const h2o::GgufTensor* s = src.find_tensor(name);
    const auto* f = reinterpret_cast<const float*>(s->data);
    const std::vector<float> v = slice(f, s->ne[0], static_cast<size_t>(rows), static_cast<size_t>(cols));
    std::vector<uint64_t> ne = {static_cast<uint64_t>(cols)};
    if (s->ne.size() > 1) ne.push_back(static_cast<uint64_t>(rows));
    w.add_tensor(name, ne, type, as_bytes(v, type));
  };
  add("token_embd.weight", kVocab, dim, t);
  add("output_norm.weight", 1, dim, h2o::TensorType::F32);
  add("blk.0.attn_norm.weight", 1, dim, h2o::TensorType::F32);
  add("blk.0.attn_q.weight", dim, dim, t);
  add("blk.0.attn_k.weight", kv_dim, dim, t);
  add("blk.0.attn_v.weight", kv_dim, dim, t);
  add("blk.0.attn_output.weight", dim, dim, t);
  add("blk.0.ffn_norm.weight", 1, dim, h2o::TensorType::F32);
  add("blk.0.ffn_gate.weight", hidden, dim, t);
  add("blk.0.ffn_up.weight", hidden, dim, t);
  add("blk.0.ffn_down.weight", dim, hidden, t);
  return w.to_bytes();
}

// stories260K.bin as a one-layer llama2.c checkpoint (dim 16, hidden 32, 2/1 heads).
Bytes tiny_llama2c(const h2o::Llama2cCheckpoint& ck) {
  const h2o::Llama2cConfig& c = ck.config();
  const h2o::Llama2cWeights& w = ck.weights();
  const size_t dim = 16, hidden = 32, heads = 2, seq = 32, head = dim / heads, kv_dim = head;  // one KV head
  const size_t D = static_cast<size_t>(c.dim), H = static_cast<size_t>(c.hidden_dim);
  Bytes b;
  for (const int32_t v : {16, 32, 1, 2, 1, kVocab, 32}) append(b, v);
  const auto put = [&](const std::vector<float>& v) {
    for (float x : v) append(b, x);
  };
  put(slice(w.token_embedding, D, kVocab, dim));
  put(slice(w.rms_att, D, 1, dim));
  put(slice(w.wq, D, dim, dim));
  put(slice(w.wk, D, kv_dim, dim));
  put(slice(w.wv, D, kv_dim, dim));
  put(slice(w.wo, D, dim, dim));
  put(slice(w.rms_ffn, D, 1, dim));
  put(slice(w.w1, D, hidden, dim));
  put(slice(w.w2, H, dim, hidden));
  put(slice(w.w3, D, hidden, dim));
  put(slice(w.rms_final, D, 1, dim));
  put(std::vector<float>(seq * head, 0.0f));  // legacy freq_cis, unused
  return b;
}

// The first `n` entries of a llama2.c tokenizer.bin (max token length, then score, length, bytes each).
Bytes tokenizer_prefix(const std::string& data, int n) {
  size_t at = 4;
  for (int i = 0; i < n; ++i) {
    int32_t len = 0;
    std::memcpy(&len, data.data() + at + 4, 4);
    at += 8 + static_cast<size_t>(len);
  }
  return Bytes(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(at));
}

Bytes with_prefix(std::initializer_list<uint8_t> prefix, std::span<const uint8_t> rest) {
  Bytes b(prefix);
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fmt::print(stderr, "usage: make_fuzz_seeds SHARED_MODELS_DIR OUT_DIR\n");
    return 2;
  }
  const fs::path models = argv[1], out = argv[2];
  const h2o::GgufFile gguf = h2o::GgufFile::open((models / "stories260K-f32.gguf").string());
  const Bytes f32 = tiny_gguf(gguf, 16, 32, 2, 1, h2o::TensorType::F32);
  const Bytes q8 = tiny_gguf(gguf, 32, 64, 4, 2, h2o::TensorType::Q8_0);
  const std::string file = h2o::read_text_file((models / "stories260K-f32.gguf").string(), "model", 1 << 22);
  const Bytes metadata(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(gguf.data_offset()));

  const h2o::Llama2cCheckpoint ck = h2o::Llama2cCheckpoint::open((models / "stories260K.bin").string());
  const Bytes bin = tiny_llama2c(ck);
  const std::string tok512 = h2o::read_text_file((models / "tok512.bin").string(), "tokenizer file");
  const Bytes tok = tokenizer_prefix(tok512, kVocab);

  write(out / "gguf_fuzz", "tiny-f32.gguf", f32);
  write(out / "gguf_fuzz", "tiny-q8_0.gguf", q8);
  write(out / "gguf_fuzz", "stories260K-metadata.gguf", metadata);

  write(out / "model_load_fuzz", "gguf-f32", with_prefix({'G'}, f32));
  write(out / "model_load_fuzz", "gguf-q8_0", with_prefix({'G'}, q8));
  Bytes llama2c = {'L'};
  append(llama2c, static_cast<uint32_t>(bin.size()));
  llama2c.insert(llama2c.end(), bin.begin(), bin.end());
  llama2c.insert(llama2c.end(), tok.begin(), tok.end());
  write(out / "model_load_fuzz", "llama2c", llama2c);

  write(out / "llama2c_header_fuzz", "tiny-as-is", with_prefix({0}, bin));
  write(out / "llama2c_header_fuzz", "tiny-header-padded", with_prefix({1}, std::span(bin).first(28 + 64)));
  Bytes big_header = {1};
  const std::string full = h2o::read_text_file((models / "stories260K.bin").string(), "checkpoint", 1 << 22);
  big_header.insert(big_header.end(), full.begin(), full.begin() + 28 + 256);
  write(out / "llama2c_header_fuzz", "stories260K-header-padded", big_header);

  Bytes tok_seed;
  append(tok_seed, static_cast<uint16_t>(511));
  tok_seed.insert(tok_seed.end(), tok512.begin(), tok512.end());
  write(out / "llama2c_tokenizer_fuzz", "tok512", tok_seed);
  Bytes tok_small;
  append(tok_small, static_cast<uint16_t>(kVocab - 1));
  tok_small.insert(tok_small.end(), tok.begin(), tok.end());
  write(out / "llama2c_tokenizer_fuzz", "tok260", tok_small);

  // Two blocks of each K-quant type from the token embedding's first 512 values.
  const auto* embd = reinterpret_cast<const float*>(gguf.find_tensor("token_embd.weight")->data);
  const std::vector<float> values(embd, embd + 512);
  write(out / "kquant_fuzz", "q4_k", with_prefix({0}, as_bytes(values, h2o::TensorType::Q4_K)));
  write(out / "kquant_fuzz", "q6_k", with_prefix({1}, as_bytes(values, h2o::TensorType::Q6_K)));

  const char* requests[] = {
      R"({"model":"stories260K-f32","prompt":"Once upon a time","max_tokens":40,"temperature":0})",
      R"({"prompt":["Lily and Ben"],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true},"stop":["zzz","Lily"],"seed":1234,"top_p":0.9,"top_k":40})",
      R"({"messages":[{"role":"system","content":"You tell stories."},{"role":"user","content":[{"type":"text","text":"A story?"}]}],"stream":true,"kv_policy":"window","kv_budget":"20%"})",
      R"({"messages":[{"role":"developer","content":"x"},{"role":"assistant","content":null}],"max_completion_tokens":5,"kv_policy":"h2o","kv_budget":24,"kv_recent":"10%","kv_sinks":2,"ignore_eos":true,"n":1})",
  };
  for (size_t i = 0; i < std::size(requests); ++i)
    write(out / "openai_request_fuzz", fmt::format("request{}.json", i), requests[i]);

  write(out / "batch_jsonl_fuzz", "prompts.jsonl",
        std::string(R"({"prompt":"Once upon a time","id":"a","max_tokens":20,"temperature":0.7,"seed":7})") + "\n" +
            R"({"prompt":"The little dog","n_predict":12,"temp":0,"top_k":5,"top_p":0.9,"ignore_eos":true})" + "\n\n" +
            R"({"prompt":"Lily","kv_policy":"sink","kv_budget":"25%","kv_sinks":2,"prefill_chunk":1})" + "\r\n" +
            R"({"prompt":"x","kv_policy":"random","kv_budget":16,"kv_recent":4,"id":[1,{"k":null}]})" + "\n");
  write(out / "batch_jsonl_fuzz", "prompts.txt", std::string("Once upon a time\nThe little dog\n\nLily and Ben\n"));

  // Stop strings then pieces, each with a length byte (text_stream_fuzz's input format).
  const auto stream_seed = [](const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
    std::string s(1, static_cast<char>(stops.size()));
    for (const std::string& t : stops) s += static_cast<char>(t.size()) + t;
    for (const std::string& t : pieces) s += static_cast<char>(t.size()) + t;
    return s;
  };
  write(out / "text_stream_fuzz", "stop",
        stream_seed({"Lily", "\n\n"}, {"Once", " upon", " a", " time", ",", " L", "il", "y", " went"}));
  write(out / "text_stream_fuzz", "utf8",
        stream_seed({"\xe2\x96\x81"}, {"caf", "\xc3", "\xa9 ", "\xf0\x9f", "\x98", "\x80", " \xe2", "\x96", "\x81x"}));
  write(out / "text_stream_fuzz", "none", stream_seed({}, {"a", "\xff", "\xc3", "b", "\xe2\x82"}));
  return 0;
}
