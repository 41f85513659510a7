// GGUF reader/writer, tensor types and `inspect`: facts about every shared GGUF file, a
// defect catalogue of hostile files (each must give a one-line h2o::Error, never a crash
// or huge allocation), writer round trips, and fp16/bf16/dequantization references.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "common/error.h"
#include "format/gguf.h"
#include "format/inspect.h"
#include "format/tensor_type.h"
#include "test_errors.h"
#include "test_paths.h"

namespace h2o {
namespace {

using Bytes = std::vector<uint8_t>;

const char* const kStoriesFiles[] = {"stories260K-f32.gguf", "stories260K-f16.gguf",
                                     "stories260K-bf16.gguf", "stories260K-q8_0.gguf",
                                     "stories260K-q4_0.gguf"};

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "h2o_" + name; }

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void put_u32(Bytes& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, sizeof v); }
void put_u64(Bytes& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, sizeof v); }

// Parses a copy in an exact-size heap buffer, so that any read past the end is caught by
// AddressSanitizer. Returns the error message, or "" if parsing succeeded.
std::string parse_error(const Bytes& bytes) {
  const Bytes copy(bytes);
  try {
    GgufFile::parse(copy, "test.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult rejects(const Bytes& bytes, const std::string& expected) {
  return test::is_error(parse_error(bytes), "test.gguf", expected);
}

Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A small valid file: one metadata key and one F32 tensor.
GgufWriter small_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.add_tensor("t", {8}, TensorType::F32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  return w;
}

// Offset of the first metadata value when the first key is `key`.
size_t first_value_offset(const std::string& key) { return 24 + 8 + key.size() + 4; }

GgufValue u8_array(std::vector<uint8_t> items) {
  GgufArray a;
  a.elem_type = GgufValueType::UINT8;
  for (uint8_t x : items) a.items.push_back({GgufValueType::UINT8, uint64_t{x}});
  return {GgufValueType::ARRAY, std::move(a)};
}

GgufValue nested_array(int depth) {
  GgufValue v = u8_array({1, 2});
  for (int d = 1; d < depth; ++d) {
    GgufArray a;
    a.elem_type = GgufValueType::ARRAY;
    a.items.push_back(v);
    v = GgufValue{GgufValueType::ARRAY, std::move(a)};
  }
  return v;
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (const auto* x = std::get_if<GgufArray>(&a.value)) {
    const auto& y = std::get<GgufArray>(b.value);
    if (x->elem_type != y.elem_type || x->items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x->items.size(); ++i) {
      if (!same_value(x->items[i], y.items[i])) return false;
    }
    return true;
  }
  if (const auto* u = std::get_if<uint64_t>(&a.value)) return *u == std::get<uint64_t>(b.value);
  if (const auto* i = std::get_if<int64_t>(&a.value)) return *i == std::get<int64_t>(b.value);
  if (const auto* d = std::get_if<double>(&a.value)) return *d == std::get<double>(b.value);
  if (const auto* f = std::get_if<bool>(&a.value)) return *f == std::get<bool>(b.value);
  return std::get<std::string>(a.value) == std::get<std::string>(b.value);
}

std::vector<float> dequantize_tensor(const GgufTensor& t) {
  std::vector<float> out(t.n_elements);
  const size_t row = t.ne[0];
  const size_t rb = row_bytes(t.type, row);
  for (size_t r = 0; r < t.n_elements / row; ++r) {
    dequantize_row(t.type, t.data + r * rb, out.data() + r * row, row);
  }
  return out;
}

// ---- the shared model files ------------------------------------------------------------

struct ModelFacts {
  const char* file;
  int64_t block_count;
  int64_t embedding_length;
  int64_t feed_forward_length;
};

class SharedGgufTest : public ::testing::TestWithParam<ModelFacts> {};

TEST_P(SharedGgufTest, KnownFacts) {
  const ModelFacts& f = GetParam();
  const GgufFile g = GgufFile::open(test::model_path(f.file));
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset() % 32, 0u);
  EXPECT_EQ(g.require_string("general.architecture"), "llama");
  EXPECT_EQ(g.require_int("llama.block_count"), f.block_count);
  EXPECT_EQ(g.require_int("llama.embedding_length"), f.embedding_length);
  EXPECT_EQ(g.require_int("llama.feed_forward_length"), f.feed_forward_length);
  EXPECT_EQ(g.require_int("llama.context_length"), 512);
  EXPECT_EQ(g.require_int("llama.attention.head_count"), 8);
  EXPECT_EQ(g.require_int("llama.attention.head_count_kv"), 4);
  EXPECT_FLOAT_EQ(static_cast<float>(*g.get_float("llama.attention.layer_norm_rms_epsilon")),
                  1e-5f);
  EXPECT_EQ(g.require_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g.require_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(g.require_int("tokenizer.ggml.eos_token_id"), 2);

  const auto& tokens = g.find("tokenizer.ggml.tokens")->as_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.elem_type, GgufValueType::STRING);
  ASSERT_EQ(tokens.items.size(), 512u);
  EXPECT_EQ(tokens.items[0].as_string("t"), "<unk>");
  EXPECT_EQ(tokens.items[1].as_string("t"), "<s>");
  EXPECT_EQ(tokens.items[3].as_string("t"), "<0x00>");
  EXPECT_EQ(g.find("tokenizer.ggml.scores")->as_array("s").items.size(), 512u);
  EXPECT_EQ(g.find("tokenizer.ggml.token_type")->as_array("s").elem_type, GgufValueType::INT32);
  EXPECT_EQ(g.key_order().size(), g.metadata().size());
  EXPECT_EQ(g.key_order().front(), "tokenizer.ggml.tokens");

  // 3 whole-model tensors + 9 per block, every one aligned and inside the file.
  EXPECT_EQ(g.tensors().size(), static_cast<size_t>(3 + 9 * f.block_count));
  const uint64_t file_size = std::filesystem::file_size(test::model_path(f.file));
  for (const auto& t : g.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_LE(g.data_offset() + t.offset + t.n_bytes, file_size) << t.name;
    EXPECT_EQ(g.find_tensor(t.name), &t);
  }
  const GgufTensor* embd = g.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->ne, (std::vector<uint64_t>{static_cast<uint64_t>(f.embedding_length), 512}));
  const GgufTensor* down = g.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne, (std::vector<uint64_t>{static_cast<uint64_t>(f.feed_forward_length),
                                             static_cast<uint64_t>(f.embedding_length)}));
  const GgufTensor* k = g.find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne[1], static_cast<uint64_t>(f.embedding_length / 2));  // 4 of 8 heads
  EXPECT_EQ(g.find_tensor("blk.99.attn_q.weight"), nullptr);
  EXPECT_EQ(g.find("no.such.key"), nullptr);
  EXPECT_FALSE(g.get_int("no.such.key").has_value());
}

INSTANTIATE_TEST_SUITE_P(
    AllFiles, SharedGgufTest,
    ::testing::Values(ModelFacts{"stories260K-f32.gguf", 5, 64, 172},
                      ModelFacts{"stories260K-f16.gguf", 5, 64, 172},
                      ModelFacts{"stories260K-bf16.gguf", 5, 64, 172},
                      ModelFacts{"stories260K-q8_0.gguf", 5, 64, 172},
                      ModelFacts{"stories260K-q4_0.gguf", 5, 64, 172},
                      ModelFacts{"books4M-f32.gguf", 6, 256, 688},
                      ModelFacts{"books4M-q8_0.gguf", 6, 256, 688}),
    [](const auto& test_info) {
      std::string n = test_info.param.file;
      for (char& c : n) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return n;
    });

TensorType tensor_type(const GgufFile& g, const std::string& name) {
  const GgufTensor* t = g.find_tensor(name);
  if (t == nullptr) throw Error("missing tensor " + name);
  return t->type;
}

TEST(GgufSharedFiles, TensorTypes) {
  const auto f32 = GgufFile::open(test::model_path("stories260K-f32.gguf"));
  for (const auto& t : f32.tensors()) EXPECT_EQ(t.type, TensorType::F32) << t.name;

  const auto f16 = GgufFile::open(test::model_path("stories260K-f16.gguf"));
  EXPECT_EQ(tensor_type(f16, "blk.0.attn_q.weight"), TensorType::F16);
  EXPECT_EQ(tensor_type(f16, "blk.0.attn_norm.weight"), TensorType::F32);

  const auto bf16 = GgufFile::open(test::model_path("stories260K-bf16.gguf"));
  EXPECT_EQ(tensor_type(bf16, "blk.0.attn_q.weight"), TensorType::BF16);
  EXPECT_EQ(tensor_type(bf16, "output_norm.weight"), TensorType::F32);

  const auto q8 = GgufFile::open(test::model_path("stories260K-q8_0.gguf"));
  EXPECT_EQ(q8.require_int("general.file_type"), 7);
  EXPECT_EQ(q8.require_int("general.quantization_version"), 2);
  for (int l = 0; l < 5; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(tensor_type(q8, b + "attn_q.weight"), TensorType::Q8_0);
    EXPECT_EQ(tensor_type(q8, b + "ffn_gate.weight"), TensorType::Q8_0);
    EXPECT_EQ(tensor_type(q8, b + "ffn_down.weight"), TensorType::F16);  // 172 % 32 != 0
    EXPECT_EQ(tensor_type(q8, b + "attn_norm.weight"), TensorType::F32);
  }

  const auto q4 = GgufFile::open(test::model_path("stories260K-q4_0.gguf"));
  EXPECT_EQ(tensor_type(q4, "blk.0.attn_q.weight"), TensorType::Q4_0);
  EXPECT_EQ(tensor_type(q4, "token_embd.weight"), TensorType::Q4_0);
  EXPECT_EQ(tensor_type(q4, "blk.0.ffn_down.weight"), TensorType::F16);

  const auto bq8 = GgufFile::open(test::model_path("books4M-q8_0.gguf"));
  EXPECT_EQ(tensor_type(bq8, "blk.5.attn_q.weight"), TensorType::Q8_0);
  EXPECT_EQ(tensor_type(bq8, "blk.5.ffn_down.weight"), TensorType::F16);  // 688 % 32 != 0
}

// The converted files hold the f32 weights encoded by llama.cpp: our encoders must
// reproduce F16, BF16 and Q8_0 bit for bit and the decoders must come back close.
TEST(GgufSharedFiles, QuantizedTensorsMatchF32Source) {
  const auto f32 = GgufFile::open(test::model_path("stories260K-f32.gguf"));
  for (const char* file : kStoriesFiles) {
    SCOPED_TRACE(file);
    const auto g = GgufFile::open(test::model_path(file));
    for (const auto& t : g.tensors()) {
      SCOPED_TRACE(t.name);
      const GgufTensor* src = f32.find_tensor(t.name);
      ASSERT_NE(src, nullptr);
      ASSERT_EQ(src->ne, t.ne);
      ASSERT_EQ(src->n_elements, t.n_elements);
      const auto* x = reinterpret_cast<const float*>(src->data);
      if (t.type == TensorType::F16 || t.type == TensorType::BF16 || t.type == TensorType::Q8_0) {
        Bytes encoded(t.n_bytes);
        const size_t rb = row_bytes(t.type, t.ne[0]);
        for (size_t r = 0; r < t.n_elements / t.ne[0]; ++r) {
          quantize_row(t.type, x + r * t.ne[0], encoded.data() + r * rb, t.ne[0]);
        }
        EXPECT_EQ(std::memcmp(encoded.data(), t.data, t.n_bytes), 0);
      }
      const std::vector<float> y = dequantize_tensor(t);
      float amax = 0;
      for (size_t i = 0; i < t.n_elements; ++i) amax = std::max(amax, std::fabs(x[i]));
      // Q4_0 steps are amax/8 per block; bound loosely by the tensor-wide amax.
      const float tol = t.type == TensorType::F32    ? 0.0f
                        : t.type == TensorType::Q4_0 ? amax / 8.0f * 1.01f
                        : t.type == TensorType::Q8_0 ? amax / 127.0f
                                                     : amax / 128.0f;
      for (size_t i = 0; i < t.n_elements; ++i) ASSERT_LE(std::fabs(y[i] - x[i]), tol) << i;
    }
  }
}

TEST(GgufSharedFiles, RewritingAFileWithTheWriterReproducesItByteForByte) {
  for (const char* file : {"stories260K-q8_0.gguf", "stories260K-bf16.gguf"}) {
    SCOPED_TRACE(file);
    const std::string path = test::model_path(file);
    const auto g = GgufFile::open(path);
    GgufWriter w(g.alignment());
    for (const auto& key : g.key_order()) w.set(key, *g.find(key));
    for (const auto& t : g.tensors()) w.add_tensor(t.name, t.ne, t.type, {t.data, t.n_bytes});
    EXPECT_TRUE(w.to_bytes() == read_bytes(path));
  }
}

TEST(GgufSharedFiles, OpenedFileStaysMappedAfterMove) {
  auto g = GgufFile::open(test::model_path("stories260K-f32.gguf"));
  const float first = reinterpret_cast<const float*>(g.find_tensor("token_embd.weight")->data)[0];
  GgufFile moved = std::move(g);
  EXPECT_EQ(reinterpret_cast<const float*>(moved.find_tensor("token_embd.weight")->data)[0],
            first);
  EXPECT_EQ(moved.source_name(), test::model_path("stories260K-f32.gguf"));
}

TEST(GgufSharedFiles, TypedAccessorErrorsNameFileAndKey) {
  const auto g = GgufFile::open(test::model_path("stories260K-f32.gguf"));
  try {
    g.require_int("llama.no_such_key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stories260K-f32.gguf: missing metadata key "
                                         "llama.no_such_key"),
              std::string::npos);
  }
  try {
    (void)g.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("stories260K-f32.gguf: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("general.architecture"), std::string::npos) << msg;
    EXPECT_NE(msg.find("STRING"), std::string::npos) << msg;
  }
  EXPECT_THROW((void)g.get_string("llama.block_count"), Error);
  EXPECT_DOUBLE_EQ(*g.get_float("llama.block_count"), 5.0);  // ints read as floats
}

// ---- truncation ----------------------------------------------------------------------------

TEST(GgufHostile, EveryTruncationIsRejected) {
  const Bytes full = read_bytes(test::model_path("stories260K-f32.gguf"));
  const auto g = GgufFile::parse(full, "full");
  uint64_t end = 0;  // end of the last tensor's data; only padding may follow
  for (const auto& t : g.tensors()) end = std::max(end, g.data_offset() + t.offset + t.n_bytes);
  ASSERT_LE(end, full.size());

  std::vector<size_t> cuts;
  for (size_t c = 0; c <= g.data_offset() + 64; ++c) cuts.push_back(c);  // whole header region
  for (size_t i = 0; i < 400; ++i) cuts.push_back(g.data_offset() + (end - g.data_offset()) * i / 400);
  cuts.push_back(end - 1);
  for (size_t cut : cuts) {
    ASSERT_LT(cut, end);
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    ASSERT_TRUE(rejects(prefix, "")) << "cut at " << cut;
  }
  // Cutting only the final padding leaves every tensor intact.
  EXPECT_EQ(parse_error(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(end))), "");
}

TEST(GgufHostile, TruncationMessagesSayTruncated) {
  const Bytes full = read_bytes(test::model_path("stories260K-q4_0.gguf"));
  EXPECT_TRUE(rejects(Bytes(full.begin(), full.begin() + 20), "file truncated"));
  EXPECT_TRUE(rejects(Bytes(full.begin(), full.begin() + 30), "file truncated"));
  EXPECT_TRUE(rejects(Bytes(full.begin(), full.begin() + 100), "file truncated or corrupt: "
                                                               "metadata count 21"));
  EXPECT_TRUE(rejects(Bytes(full.begin(), full.begin() + 2000), "array of 512 STRING elements "
                                                                "cannot fit"));
  EXPECT_TRUE(rejects(Bytes(full.begin(), full.end() - 100), "extends beyond the end"));
}

// ---- header defects --------------------------------------------------------------------

TEST(GgufHostile, TooSmallOrWrongMagic) {
  EXPECT_TRUE(rejects({}, "too short"));
  EXPECT_TRUE(rejects({'G', 'G', 'U'}, "too short"));
  Bytes b = small_writer().to_bytes();
  b[0] = 'g';
  EXPECT_TRUE(rejects(b, "not a GGUF file"));
  EXPECT_TRUE(rejects(read_bytes(test::model_path("stories260K.bin")), "not a GGUF file"));
}

TEST(GgufHostile, Versions) {
  Bytes b = small_writer().to_bytes();
  put_u32(b, 4, 1);
  EXPECT_TRUE(rejects(b, "GGUF version 1 is not supported"));
  put_u32(b, 4, 4);
  EXPECT_TRUE(rejects(b, "unsupported GGUF version 4"));
  put_u32(b, 4, 0);
  EXPECT_TRUE(rejects(b, "unsupported GGUF version 0"));
  put_u32(b, 4, 3u << 24);  // version 3 written big-endian
  EXPECT_TRUE(rejects(b, "big-endian"));
  put_u32(b, 4, 2);  // v2 has the same layout as v3
  ASSERT_EQ(parse_error(b), "");
  EXPECT_EQ(GgufFile::parse(b, "v2").version(), 2u);
}

TEST(GgufHostile, AbsurdCounts) {
  const Bytes good = small_writer().to_bytes();
  for (uint64_t n : {uint64_t{1} << 60, ~uint64_t{0}, uint64_t{1} << 32, uint64_t{100000}}) {
    Bytes b = good;
    put_u64(b, 8, n);
    EXPECT_TRUE(rejects(b, "tensor count")) << n;
    b = good;
    put_u64(b, 16, n);
    EXPECT_TRUE(rejects(b, "metadata count")) << n;
  }
  // Each count alone fits, together they cannot.
  Bytes b = good;
  const uint64_t left = good.size() - 24;
  put_u64(b, 8, left / 24);
  put_u64(b, 16, left / 13);
  EXPECT_TRUE(rejects(b, "cannot fit"));
}

TEST(GgufHostile, HugeStringLengths) {
  const Bytes good = small_writer().to_bytes();
  Bytes b = good;
  put_u64(b, 24, uint64_t{1} << 62);  // key length
  EXPECT_TRUE(rejects(b, "key has length 4611686018427387904"));
  b = good;
  put_u64(b, 24, good.size());  // just beyond the file
  EXPECT_TRUE(rejects(b, "more than the"));
  b = good;
  put_u64(b, first_value_offset("general.architecture"), uint64_t{1} << 62);  // value length
  EXPECT_TRUE(rejects(b, "string value has length"));
  b = good;
  put_u64(b, first_value_offset("general.architecture"), ~uint64_t{0});
  EXPECT_TRUE(rejects(b, "string value has length"));
}

TEST(GgufHostile, HugeArrayCounts) {
  struct Case {
    GgufValueType elem;
    uint64_t count;
  };
  for (const Case c : {Case{GgufValueType::UINT8, uint64_t{1} << 60},
                       Case{GgufValueType::UINT64, uint64_t{1} << 61},
                       Case{GgufValueType::STRING, uint64_t{1} << 62},
                       Case{GgufValueType::ARRAY, ~uint64_t{0}},
                       Case{GgufValueType::FLOAT32, uint64_t{1} << 40}}) {
    GgufWriter w;
    GgufArray a;
    a.elem_type = c.elem;
    w.set("a", GgufValue{GgufValueType::ARRAY, a});
    Bytes b = w.to_bytes();
    const size_t at = first_value_offset("a");
    put_u64(b, at + 4, c.count);
    EXPECT_TRUE(rejects(b, "cannot fit")) << gguf_value_type_name(c.elem);
  }
}

// Raw GGUF v3 bytes: `n` metadata entries with distinct short keys and UINT8 values.
Bytes tiny_entries_file(uint32_t n) {
  Bytes b;
  const auto put = [&b](auto v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof v);
  };
  put(uint32_t{0x46554747});
  put(uint32_t{3});
  put(uint64_t{0});  // tensors
  put(uint64_t{n});  // metadata entries
  for (uint32_t i = 0; i < n; ++i) {
    const std::string key = std::to_string(i);
    put(uint64_t{key.size()});
    b.insert(b.end(), key.begin(), key.end());
    put(uint32_t{0});  // UINT8
    b.push_back(1);
  }
  return b;
}

TEST(GgufHostile, MetadataMemoryIsBoundedByTheFileSize) {
  // Each entry takes about 20 bytes of file but a map node, two keys and a value in memory
  // (more than 10x): a file made only of them is refused before it multiplies its size.
  const Bytes many = tiny_entries_file(500000);
  EXPECT_TRUE(rejects(many, "bytes of memory")) << parse_error(many);
  // A few thousand are fine (the fixed allowance), as are all real files (GgufSharedFiles).
  EXPECT_EQ(parse_error(tiny_entries_file(5000)), "");
}

TEST(GgufHostile, ScalarArraysAreStoredAsTheirBytes) {
  GgufWriter w;
  GgufArray a;
  a.elem_type = GgufValueType::UINT16;
  std::vector<uint8_t> raw(2 * (size_t{1} << 22));
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 7);
  a.items.append_scalars(GgufValueType::UINT16, raw, raw.size() / 2);
  w.set("big", GgufValue{GgufValueType::ARRAY, std::move(a)});
  w.set_string_array("strs", {"a", std::string(100, 'b'), ""});
  const Bytes b = w.to_bytes();
  const GgufFile g = GgufFile::parse(b, "x");
  const GgufArray& big = g.find("big")->as_array("big");
  ASSERT_EQ(big.items.size(), size_t{1} << 22);
  EXPECT_EQ(big.items.scalar_bytes().size(), raw.size());  // 2 bytes per item, nothing per item beyond
  EXPECT_EQ(big.items[12345].as_int("big"), raw[24690] | (raw[24691] << 8));
  EXPECT_EQ(big.items[5].type(), GgufValueType::UINT16);
  EXPECT_THROW(big.items[5].as_string("big"), Error);
  EXPECT_THROW(big.items.at(size_t{1} << 22), std::out_of_range);
  const GgufArray& strs = g.find("strs")->as_array("strs");
  const std::string& s1 = strs.items[1].as_string("strs");
  EXPECT_EQ(s1, std::string(100, 'b'));
  EXPECT_EQ(&s1, &strs.items[1].as_string("strs"));  // a reference into the array, not a copy
  EXPECT_THROW(strs.items[0].as_int("strs"), Error);
  // Items of another type cannot join an array.
  GgufItems items;
  items.push_back(GgufValue{GgufValueType::INT8, int64_t{-3}});
  EXPECT_THROW(items.push_back(GgufValue{GgufValueType::UINT8, uint64_t{3}}), Error);
  EXPECT_THROW(items.push_back(GgufValue{GgufValueType::INT8, int64_t{300}}), Error);
  EXPECT_EQ(items[0].as_int("k"), -3);
}

TEST(GgufHostile, ArrayNestingDepth) {
  for (int depth = 1; depth <= 8; ++depth) {
    GgufWriter w;
    w.set("deep", nested_array(depth));
    const Bytes b = w.to_bytes();
    ASSERT_EQ(parse_error(b), "") << depth;
    EXPECT_TRUE(same_value(*GgufFile::parse(b, "x").find("deep"), nested_array(depth)));
  }
  for (int depth : {9, 10, 100}) {
    GgufWriter w;
    w.set("deep", nested_array(depth));
    EXPECT_TRUE(rejects(w.to_bytes(), "nested more than 8 deep")) << depth;
  }
}

TEST(GgufHostile, BadValueTypes) {
  Bytes b = small_writer().to_bytes();
  put_u32(b, first_value_offset("general.architecture") - 4, 13);
  EXPECT_TRUE(rejects(b, "unknown value type 13"));
  put_u32(b, first_value_offset("general.architecture") - 4, 0xFFFFFFFF);
  EXPECT_TRUE(rejects(b, "unknown value type 4294967295"));

  GgufWriter w;
  GgufArray a;
  a.elem_type = GgufValueType::UINT8;
  w.set("a", GgufValue{GgufValueType::ARRAY, a});
  b = w.to_bytes();
  put_u32(b, first_value_offset("a"), 77);
  EXPECT_TRUE(rejects(b, "unknown array element type 77"));

  GgufWriter wb;
  wb.set_bool("flag", true);
  b = wb.to_bytes();
  b[first_value_offset("flag")] = 2;
  EXPECT_TRUE(rejects(b, "BOOL value 2"));
}

TEST(GgufHostile, DuplicateKeys) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_u32("b", 2);
  Bytes b = w.to_bytes();
  b[first_value_offset("a") + 4 + 8] = 'a';  // second key "b" -> "a"
  EXPECT_TRUE(rejects(b, "duplicate metadata key"));
}

TEST(GgufHostile, Alignment) {
  GgufWriter w = small_writer();
  w.set_u32("general.alignment", 48);
  EXPECT_TRUE(rejects(w.to_bytes(), "not a power of two"));
  w.set_u32("general.alignment", 0);
  EXPECT_TRUE(rejects(w.to_bytes(), "not a power of two"));
  w.set("general.alignment", GgufValue{GgufValueType::UINT64, uint64_t{32}});
  EXPECT_TRUE(rejects(w.to_bytes(), "general.alignment has type UINT64, must be UINT32"));
  w.set("general.alignment", GgufValue{GgufValueType::STRING, std::string("32")});
  EXPECT_TRUE(rejects(w.to_bytes(), "must be UINT32"));
}

// ---- tensor table defects --------------------------------------------------------------

GgufWriter writer_with_info(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                            uint64_t offset) {
  GgufWriter w = small_writer();
  w.add_tensor_info_unchecked(name, std::move(ne), type, offset);
  return w;
}

TEST(GgufHostile, TensorOffsets) {
  EXPECT_TRUE(rejects(writer_with_info("x", {8}, 0, 1 << 20).to_bytes(), "extends beyond the end"));
  EXPECT_TRUE(rejects(writer_with_info("x", {8}, 0, 32).to_bytes(), "extends beyond the end"));
  // Offset + size would wrap around 2^64.
  EXPECT_TRUE(rejects(writer_with_info("x", {8}, 0, ~uint64_t{31}).to_bytes(), "extends beyond"));
  EXPECT_TRUE(rejects(writer_with_info("x", {8}, 0, 4).to_bytes(), "not a multiple of the alignment"));
  // Overlapping another tensor is allowed (read-only data); exactly in bounds is fine.
  EXPECT_EQ(parse_error(writer_with_info("x", {8}, 0, 0).to_bytes()), "");
  EXPECT_EQ(parse_error(writer_with_info("x", {0, 5}, 0, 0).to_bytes()), "");  // empty
  EXPECT_TRUE(rejects(writer_with_info("x", {0, 5}, 0, 1 << 20).to_bytes(), "extends beyond"));
}

TEST(GgufHostile, TensorTypeIds) {
  // One line naming the tensor and the type (ggml's name where ggml has one).
  EXPECT_TRUE(rejects(writer_with_info("x", {32}, 17, 0).to_bytes(), "\"x\": unsupported tensor type IQ2_XS (type 17)"));
  EXPECT_TRUE(rejects(writer_with_info("x", {32}, 99, 0).to_bytes(), "unsupported tensor type type 99"));
  EXPECT_TRUE(rejects(writer_with_info("x", {32}, 0xFFFFFFFF, 0).to_bytes(), "type 4294967295"));
  EXPECT_EQ(parse_error(writer_with_info("x", {32}, 3, 0).to_bytes()), "");  // Q4_1 loads now
}

TEST(GgufHostile, TensorDims) {
  EXPECT_TRUE(rejects(writer_with_info("x", {1, 1, 1, 1, 1}, 0, 0).to_bytes(), "n_dims is 5"));
  EXPECT_TRUE(rejects(writer_with_info("x", {}, 0, 0).to_bytes(), "n_dims is 0"));
  EXPECT_EQ(parse_error(writer_with_info("x", {1, 1, 1, 2}, 0, 0).to_bytes()), "");
  // n_dims = 2^32-1 must not drive a huge loop or allocation.
  GgufWriter w = writer_with_info("x", {1}, 0, 0);
  Bytes b = w.to_bytes();
  const std::string needle = std::string("\x01\0\0\0\0\0\0\0x", 9);
  const auto it = std::search(b.begin() + 24, b.end(), needle.begin(), needle.end());
  ASSERT_NE(it, b.end());
  put_u32(b, static_cast<size_t>(it - b.begin()) + 9, 0xFFFFFFFF);
  EXPECT_TRUE(rejects(b, "n_dims is 4294967295"));
}

TEST(GgufHostile, TensorShapes) {
  EXPECT_TRUE(rejects(writer_with_info("x", {48, 2}, 8, 0).to_bytes(),
                      "ne[0] = 48 is not a multiple of the Q8_0 block size 32"));
  EXPECT_TRUE(rejects(writer_with_info("x", {100}, 12, 0).to_bytes(), "Q4_K block size 256"));
  EXPECT_TRUE(rejects(writer_with_info("x", {1ull << 32, 1ull << 32, 1ull << 32}, 0, 0).to_bytes(),
                      "element count overflows"));
  EXPECT_TRUE(rejects(writer_with_info("x", {1ull << 31, 1ull << 31}, 0, 0).to_bytes(),
                      "byte size overflows"));
  EXPECT_TRUE(rejects(writer_with_info("x", {~uint64_t{0}}, 0, 0).to_bytes(), "int64 range"));
  // 2^62 F32 elements are 2^64 bytes: a wrapped size of 0 must not pass the bounds check.
  EXPECT_TRUE(rejects(writer_with_info("x", {1ull << 62}, 0, 0).to_bytes(), "byte size overflows"));
  EXPECT_TRUE(rejects(writer_with_info("x", {1ull << 61, 2}, 0, 0).to_bytes(), "byte size overflows"));
  EXPECT_TRUE(rejects(writer_with_info("x", {1ull << 40, 1ull << 20}, 0, 0).to_bytes(),
                      "extends beyond"));
}

TEST(GgufHostile, TensorNames) {
  EXPECT_TRUE(rejects(writer_with_info("t", {8}, 0, 0).to_bytes(), "duplicate tensor name"));
  EXPECT_TRUE(rejects(writer_with_info(std::string(64, 'n'), {8}, 0, 0).to_bytes(),
                      "name is 64 bytes long"));
  EXPECT_EQ(parse_error(writer_with_info(std::string(63, 'n'), {8}, 0, 0).to_bytes()), "");
  // Names are arbitrary bytes; messages render them printable.
  const std::string msg =
      parse_error(writer_with_info(std::string("bad\n\xff", 5), {8}, 17, 0).to_bytes());
  EXPECT_NE(msg.find("bad\\n\\xFF"), std::string::npos) << msg;
}

// ---- paths ---------------------------------------------------------------------------------

TEST(GgufHostile, Paths) {
  const auto error_of = [](const std::string& path) -> std::string {
    try {
      GgufFile::open(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string dir = ::testing::TempDir();
  EXPECT_NE(error_of(dir).find(dir + ": is a directory"), std::string::npos) << error_of(dir);
  const std::string missing = temp_path("missing.gguf");
  std::filesystem::remove(missing);
  EXPECT_NE(error_of(missing).find(missing + ": no such file"), std::string::npos);
  const std::string empty = temp_path("empty.gguf");
  write_bytes(empty, {});
  EXPECT_NE(error_of(empty).find(empty + ": file is 0 bytes long"), std::string::npos);
  const std::string good = temp_path("small.gguf");
  small_writer().write(good);
  EXPECT_EQ(error_of(good), "");
  EXPECT_THROW(small_writer().write(dir + "/no/such/dir/x.gguf"), Error);
}

// ---- writer ----------------------------------------------------------------------------------

GgufValue value(GgufValueType t, decltype(GgufValue::value) v) { return GgufValue{t, std::move(v)}; }

TEST(GgufWriterTest, RoundTripsAllValueTypesAndTensors) {
  GgufWriter w;
  std::vector<std::pair<std::string, GgufValue>> kvs = {
      {"u8", value(GgufValueType::UINT8, uint64_t{255})},
      {"i8", value(GgufValueType::INT8, int64_t{-128})},
      {"u16", value(GgufValueType::UINT16, uint64_t{65535})},
      {"i16", value(GgufValueType::INT16, int64_t{-32768})},
      {"u32", value(GgufValueType::UINT32, uint64_t{4000000000})},
      {"i32", value(GgufValueType::INT32, int64_t{-2000000000})},
      {"f32", value(GgufValueType::FLOAT32, double{0.1f})},
      {"bool", value(GgufValueType::BOOL, true)},
      {"str", value(GgufValueType::STRING, std::string("h\xc3\xa9llo \"w\"\n"))},
      {"u64", value(GgufValueType::UINT64, uint64_t{1} << 63)},
      {"i64", value(GgufValueType::INT64, std::numeric_limits<int64_t>::min())},
      {"f64", value(GgufValueType::FLOAT64, 1e300)},
      {"empty_str", value(GgufValueType::STRING, std::string())},
      {"nested", nested_array(4)},
  };
  for (const auto& [k, v] : kvs) w.set(k, v);
  w.set_string_array("strs", {"a", "", "ccc"});
  w.set_f32_array("floats", {1.5f, -2.0f});
  w.set_i32_array("ints", {-1, 7});
  w.set_u32("u32", 4000000000);  // replaces, keeps position

  std::vector<float> a(64), c(96);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.25f - 3.0f;
  for (size_t i = 0; i < c.size(); ++i) c[i] = std::sin(static_cast<float>(i));
  Bytes q8(row_bytes(TensorType::Q8_0, 96)), f16(2 * 3);
  quantize_row(TensorType::Q8_0, c.data(), q8.data(), 96);
  quantize_row(TensorType::F16, a.data(), f16.data(), 3);
  w.add_tensor("a", {16, 4}, TensorType::F32, f32_bytes(a));
  w.add_tensor("odd", {3}, TensorType::F16, f16);  // 6 bytes: the next tensor needs padding
  w.add_tensor("c", {96}, TensorType::Q8_0, q8);

  const Bytes bytes = w.to_bytes();
  EXPECT_EQ(bytes.size() % 32, 0u);
  const GgufFile g = GgufFile::parse(bytes, "roundtrip");
  EXPECT_EQ(g.version(), 3u);
  ASSERT_EQ(g.key_order().size(), kvs.size() + 3);
  for (size_t i = 0; i < kvs.size(); ++i) {
    EXPECT_EQ(g.key_order()[i], kvs[i].first);
    EXPECT_TRUE(same_value(*g.find(kvs[i].first), kvs[i].second)) << kvs[i].first;
  }
  EXPECT_EQ(g.require_int("u32"), 4000000000);
  EXPECT_EQ(g.require_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_THROW(g.find("u64")->as_int("u64"), Error);  // 2^63 does not fit in int64
  EXPECT_EQ(*g.get_float("f32"), double{0.1f});
  EXPECT_TRUE(g.find("bool")->as_bool("bool"));
  EXPECT_EQ(g.find("strs")->as_array("strs").items[2].as_string("s"), "ccc");
  EXPECT_EQ(g.find("ints")->as_array("ints").items[0].as_int("i"), -1);
  EXPECT_EQ(g.find("floats")->as_array("f").items[0].as_float("f"), 1.5);

  ASSERT_EQ(g.tensors().size(), 3u);
  const GgufTensor* ta = g.find_tensor("a");
  const GgufTensor* todd = g.find_tensor("odd");
  const GgufTensor* tc = g.find_tensor("c");
  ASSERT_TRUE(ta && todd && tc);
  EXPECT_EQ(ta->ne, (std::vector<uint64_t>{16, 4}));
  EXPECT_EQ(ta->n_elements, 64u);
  EXPECT_EQ(ta->n_bytes, 256u);
  EXPECT_EQ(std::memcmp(ta->data, a.data(), 256), 0);
  EXPECT_EQ(todd->n_bytes, 6u);
  EXPECT_EQ(std::memcmp(todd->data, f16.data(), 6), 0);
  EXPECT_EQ(tc->type, TensorType::Q8_0);
  EXPECT_EQ(tc->n_bytes, 3u * 34);
  EXPECT_EQ(std::memcmp(tc->data, q8.data(), q8.size()), 0);
  for (const auto& t : g.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ((g.data_offset() + t.offset) % 32, 0u);
  }
}

TEST(GgufWriterTest, CustomAlignmentIsRecordedAndHonoured) {
  GgufWriter w(256);
  w.add_tensor("x", {3}, TensorType::F32, f32_bytes({1, 2, 3}));
  w.add_tensor("y", {1}, TensorType::F32, f32_bytes({4}));
  const Bytes b = w.to_bytes();
  const auto g = GgufFile::parse(b, "aligned");
  EXPECT_EQ(g.alignment(), 256u);
  EXPECT_EQ(g.require_int("general.alignment"), 256);
  EXPECT_EQ(g.data_offset() % 256, 0u);
  EXPECT_EQ(g.find_tensor("y")->offset, 256u);
  EXPECT_EQ(reinterpret_cast<const float*>(g.find_tensor("y")->data)[0], 4.0f);
  EXPECT_THROW(GgufWriter(48).to_bytes(), Error);
}

TEST(GgufWriterTest, RejectsInvalidTensorsAndValues) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", {8}, TensorType::F32, Bytes(31)), Error);
  EXPECT_THROW(w.add_tensor("x", {48}, TensorType::Q8_0, Bytes(51)), Error);
  EXPECT_THROW(w.add_tensor("x", {}, TensorType::F32, Bytes()), Error);
  EXPECT_THROW(w.add_tensor(std::string(64, 'x'), {1}, TensorType::F32, Bytes(4)), Error);
  w.add_tensor("x", {1}, TensorType::F32, Bytes(4));
  EXPECT_THROW(w.add_tensor("x", {1}, TensorType::F32, Bytes(4)), Error);

  GgufWriter v;
  v.set("bad", value(GgufValueType::UINT8, uint64_t{256}));
  EXPECT_THROW(v.to_bytes(), Error);
  v.set("bad", value(GgufValueType::UINT32, std::string("x")));
  EXPECT_THROW(v.to_bytes(), Error);
  GgufArray mixed;
  mixed.elem_type = GgufValueType::UINT8;
  mixed.items.push_back(value(GgufValueType::STRING, std::string("x")));
  v.set("bad", value(GgufValueType::ARRAY, mixed));
  EXPECT_THROW(v.to_bytes(), Error);
}

// ---- values and display ------------------------------------------------------------------

TEST(GgufValueTest, AccessorsCheckTypes) {
  const GgufValue s = value(GgufValueType::STRING, std::string("x"));
  EXPECT_FALSE(s.is_integer());
  EXPECT_THROW(s.as_int("k"), Error);
  EXPECT_THROW(s.as_float("k"), Error);
  EXPECT_THROW(s.as_array("k"), Error);
  EXPECT_THROW(s.as_bool("k"), Error);
  const GgufValue i = value(GgufValueType::INT16, int64_t{-5});
  EXPECT_TRUE(i.is_integer());
  EXPECT_EQ(i.as_int("k"), -5);
  EXPECT_EQ(i.as_float("k"), -5.0);
  EXPECT_THROW(i.as_string("k"), Error);
  try {
    s.as_int("my.key");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "metadata key 'my.key' has type STRING, expected an integer");
  }
  // A value whose alternative does not match its type tag is rejected, not misread.
  EXPECT_THROW(value(GgufValueType::UINT32, int64_t{1}).as_int("k"), Error);
}

TEST(GgufValueTest, DisplayStrings) {
  EXPECT_EQ(value(GgufValueType::UINT32, uint64_t{7}).to_display_string(), "7");
  EXPECT_EQ(value(GgufValueType::INT8, int64_t{-7}).to_display_string(), "-7");
  EXPECT_EQ(value(GgufValueType::FLOAT32, double{1e-5f}).to_display_string(), "1e-05");
  EXPECT_EQ(value(GgufValueType::FLOAT64, 0.5).to_display_string(), "0.5");
  EXPECT_EQ(value(GgufValueType::BOOL, false).to_display_string(), "false");
  EXPECT_EQ(value(GgufValueType::STRING, std::string("a\"b\\\n\x01\xe2\x96\x81\xff"))
                .to_display_string(),
            "\"a\\\"b\\\\\\n\\x01\xe2\x96\x81\\xFF\"");
  const std::string long_string = value(GgufValueType::STRING, std::string(1000, 'z'))
                                      .to_display_string();
  EXPECT_LT(long_string.size(), 300u);
  EXPECT_NE(long_string.find("(1000 bytes)"), std::string::npos);

  GgufArray a;
  a.elem_type = GgufValueType::UINT8;
  for (uint64_t k = 0; k < 20; ++k) a.items.push_back(value(GgufValueType::UINT8, k));
  const GgufValue arr = value(GgufValueType::ARRAY, a);
  EXPECT_EQ(arr.to_display_string(3), "[0, 1, 2, ... (20 items)]");
  EXPECT_EQ(arr.to_display_string(0), "[... (20 items)]");
  EXPECT_EQ(nested_array(2).to_display_string(), "[[1, 2]]");
  EXPECT_EQ(value(GgufValueType::ARRAY, GgufArray{}).to_display_string(), "[]");
  EXPECT_EQ(printable_string("ok\t\xc3\x28"), "ok\\t\\xC3(");
}

// ---- inspect ------------------------------------------------------------------------------------

TEST(InspectTest, GgufReport) {
  const std::string path = test::model_path("stories260K-q8_0.gguf");
  EXPECT_EQ(detect_model_format(path), ModelFormat::GGUF);
  const InspectReport r = inspect_model(path);
  EXPECT_EQ(r.format, ModelFormat::GGUF);
  EXPECT_EQ(r.file_bytes, std::filesystem::file_size(path));
  ASSERT_EQ(r.tensors.size(), 48u);
  ASSERT_EQ(r.metadata.size(), 21u);
  EXPECT_EQ(r.metadata[0].key, "tokenizer.ggml.tokens");
  EXPECT_EQ(r.metadata[0].type, "ARRAY[STRING]");
  EXPECT_NE(r.metadata[0].value.find("(512 items)"), std::string::npos);
  uint64_t params = 0, bytes = 0;
  for (const auto& t : r.tensors) {
    params += t.n_elements;
    bytes += t.n_bytes;
  }
  EXPECT_EQ(r.total_params, params);
  EXPECT_EQ(r.total_bytes, bytes);
  EXPECT_LT(r.total_bytes, r.file_bytes);

  const std::string text = report_to_text(r);
  EXPECT_NE(text.find("llama.block_count"), std::string::npos);
  EXPECT_NE(text.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(text.find("Q8_0"), std::string::npos);

  const nlohmann::json j = report_to_json(r);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["tensors"].size(), 48u);
  EXPECT_EQ(j["total_params"].get<uint64_t>(), r.total_params);
  const auto& q = *std::find_if(j["tensors"].begin(), j["tensors"].end(),
                                [](const auto& t) { return t["name"] == "blk.0.attn_q.weight"; });
  EXPECT_EQ(q["type"], "Q8_0");
  EXPECT_EQ(q["shape"], nlohmann::json::array({64, 64}));
  EXPECT_NO_THROW((void)j.dump());
}

TEST(InspectTest, ErrorsNameThePath) {
  const std::string bad = temp_path("bad.gguf");
  Bytes b = small_writer().to_bytes();
  put_u32(b, 4, 1);
  write_bytes(bad, b);
  try {
    inspect_model(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ": GGUF version 1"), std::string::npos);
  }
  EXPECT_THROW(inspect_model(temp_path("does-not-exist")), Error);
}

// ---- tensor types: fp16 / bf16 --------------------------------------------------------------

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

TEST(TensorTypeTest, Traits) {
  EXPECT_EQ(type_traits(8)->block_bytes, 34u);
  EXPECT_EQ(type_traits(2)->block_bytes, 18u);
  EXPECT_EQ(type_traits(12)->block_elems, 256u);
  EXPECT_EQ(type_traits(14)->block_bytes, 210u);
  EXPECT_EQ(type_traits(30)->name, "BF16");
  EXPECT_EQ(type_traits(17), nullptr);
  EXPECT_EQ(type_traits(3)->name, "Q4_1");
  EXPECT_EQ(type_name(17), "IQ2_XS (type 17)");
  EXPECT_EQ(row_bytes(TensorType::Q4_0, 64), 36u);
  EXPECT_EQ(row_bytes(TensorType::F16, 172), 344u);
}

// Independent fp16 decode by arithmetic: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
// 2^-14 * m/1024.
double fp16_reference(uint16_t h) {
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0) return sign * std::ldexp(m, -24);
  if (e == 31) return m == 0 ? sign * INFINITY : NAN;
  return sign * std::ldexp(1024 + m, e - 25);
}

TEST(TensorTypeTest, Fp16ToFp32AllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    const float f = fp16_to_fp32(h16);
    const double ref = fp16_reference(h16);
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      // Payload kept, quiet bit set, sign kept (ggml / F16C behaviour).
      ASSERT_EQ(bits(f), ((h & 0x8000u) << 16) | 0x7FC00000u | ((h & 0x3FFu) << 13)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), ref) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    }
  }
}

TEST(TensorTypeTest, Fp16RoundTripsAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    if ((h16 & 0x7C00) == 0x7C00 && (h16 & 0x3FF) != 0) continue;  // NaN
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(h16)), h16) << h;
  }
  // Every float against nearest-even computed exactly in double, on a dense sample.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = i < 1000000 ? static_cast<uint32_t>(i) * 4295u : static_cast<uint32_t>(rng());
    const float f = std::bit_cast<float>(u);
    const uint16_t h = fp32_to_fp16(f);
    if (std::isnan(f)) {
      ASSERT_EQ(h & 0x7FFF, 0x7E00) << u;
      continue;
    }
    // Candidates: the result and its neighbours towards/away from zero.
    const double x = std::fabs(static_cast<double>(f));
    const double got = std::fabs(fp16_reference(h));
    ASSERT_EQ((h & 0x8000) != 0, std::signbit(f)) << u;
    const uint16_t mag = h & 0x7FFF;
    const double below = mag > 0 ? fp16_reference(static_cast<uint16_t>(mag - 1)) : -1.0;
    // 65520 = 65504 + half an ulp: the overflow boundary rounds to inf.
    const double above = mag < 0x7C00 ? (mag + 1 == 0x7C00 ? 65536.0
                                                           : fp16_reference(static_cast<uint16_t>(mag + 1)))
                                      : INFINITY;
    const double got_d = mag == 0x7C00 ? 65536.0 : got;
    if (mag == 0x7C00) {
      ASSERT_GE(x, 65520.0) << u;
      continue;
    }
    ASSERT_LE(std::fabs(x - got_d), std::fabs(x - below)) << u;
    ASSERT_LE(std::fabs(x - got_d), std::fabs(x - above)) << u;
    if (std::fabs(x - got_d) == std::fabs(x - below) || std::fabs(x - got_d) == std::fabs(x - above)) {
      ASSERT_EQ(mag & 1, 0) << "tie not rounded to even: " << u;
    }
  }
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);   // tie between 0 and 1 ulp -> 0
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);   // 1.5 ulp -> 2 (even)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);   // smallest normal
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
}

TEST(TensorTypeTest, Bf16) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    const float f = bf16_to_fp32(h16);
    ASSERT_EQ(bits(f), h << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(fp32_to_bf16(f), h16) << h;
    }
  }
  // Round to nearest even against an exact double reference.
  std::mt19937 rng(2);
  for (int i = 0; i < 1000000; ++i) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    const uint16_t b = fp32_to_bf16(f);
    if (std::isinf(f)) continue;
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(b)));
      ASSERT_NE(b & 0x40, 0) << "NaN must be quiet";
      continue;
    }
    const uint32_t u = bits(f);
    const uint16_t lo = static_cast<uint16_t>(u >> 16);
    const uint16_t hi = static_cast<uint16_t>(lo + 1);
    const auto value_of = [](uint16_t v) {  // the exponent field overflowing means 2^128
      return (v & 0x7F80) == 0x7F80 ? std::ldexp(1.0, 128) : std::fabs(double{bf16_to_fp32(v)});
    };
    const double x = std::fabs(double{f});
    const double dlo = x - value_of(lo), dhi = value_of(hi) - x;
    const uint16_t expect = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) == 0 ? lo : hi);
    ASSERT_EQ(b, expect) << u;
  }
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)), 0x7FC0);  // sNaN made quiet
}

// ---- tensor types: block formats --------------------------------------------------------------

void store_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}

TEST(TensorTypeTest, DequantizeQ8_0AndQ4_0HandBuilt) {
  uint8_t q8[34];
  store_f16(q8, 0.5f);
  for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float y[32];
  dequantize_row(TensorType::Q8_0, q8, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 16));

  // Q4_0: low nibbles are elements 0..15, high nibbles 16..31.
  uint8_t q4[18];
  store_f16(q4, 2.0f);
  for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  dequantize_row(TensorType::Q4_0, q4, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(15 - j - 8));
  }
}

TEST(TensorTypeTest, QuantizeRoundTrip) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(256);
  for (auto& v : x) v = dist(rng);
  x[5] = 0;
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block
  for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                       TensorType::Q4_0}) {
    Bytes q(row_bytes(t, x.size()));
    quantize_row(t, x.data(), q.data(), x.size());
    std::vector<float> y(x.size());
    dequantize_row(t, q.data(), y.data(), x.size());
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      // Q4_0 clips the side opposite the max to +7: error up to one step d = amax/8.
      // Q8_0 errs by half a step plus the fp16 rounding of d times |q| <= 127.
      const float tol = t == TensorType::F32    ? 0.0f
                        : t == TensorType::Q4_0 ? amax / 8.0f * 1.01f
                        : t == TensorType::Q8_0 ? amax / 254.0f + amax / 1024.0f
                        : t == TensorType::F16  ? amax / 1024.0f
                                                : amax / 128.0f;
      for (size_t j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), tol)
            << traits(t).name << " " << b * 32 + j;
      }
    }
    for (size_t j = 64; j < 96; ++j) EXPECT_EQ(y[j], 0.0f) << traits(t).name;
  }
  // Every named type can be written now (Q4_K/Q6_K: quantize_k_test.cpp); an id outside
  // the enum still cannot.
  EXPECT_THROW(quantize_row(static_cast<TensorType>(17), x.data(), nullptr, 256), Error);
}

// Q4_K and Q6_K decoded element by element straight from the layout description
// (docs/formats.md), independently of the block-walking decoder.
float q4_k_reference(const uint8_t* b, size_t i) {
  const float d = fp16_to_fp32(static_cast<uint16_t>(b[0] | (b[1] << 8)));
  const float dmin = fp16_to_fp32(static_cast<uint16_t>(b[2] | (b[3] << 8)));
  const uint8_t* s = b + 4;
  const uint8_t* qs = b + 16;
  const size_t chunk = i / 64, r = i % 64, j = 2 * chunk + (r >= 32 ? 1 : 0), l = r % 32;
  int sc = 0, m = 0;
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
  const uint8_t byte = qs[chunk * 32 + l];
  const int q = r < 32 ? (byte & 0xF) : (byte >> 4);
  return d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
}

float q6_k_reference(const uint8_t* b, size_t i) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = fp16_to_fp32(static_cast<uint16_t>(b[208] | (b[209] << 8)));
  const size_t half = i / 128, r = i % 128, k = r / 32, l = r % 32;
  const uint8_t low_byte = ql[half * 64 + l + (k & 1) * 32];
  const int low = k < 2 ? (low_byte & 0xF) : (low_byte >> 4);
  const int high = (qh[half * 32 + l] >> (2 * k)) & 3;
  const int q = (low | (high << 4)) - 32;
  return d * static_cast<float>(sc[half * 8 + l / 16 + 2 * k]) * static_cast<float>(q);
}

TEST(TensorTypeTest, DequantizeKQuantsMatchLayoutReference) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    uint8_t q4k[2 * 144], q6k[2 * 210];
    for (auto& v : q4k) v = static_cast<uint8_t>(rng());
    for (auto& v : q6k) v = static_cast<uint8_t>(rng());
    for (int blk = 0; blk < 2; ++blk) {  // keep the scales finite and modest
      store_f16(q4k + blk * 144, 0.01f * static_cast<float>(trial + 1));
      store_f16(q4k + blk * 144 + 2, -0.003f * static_cast<float>(trial + 1));
      store_f16(q6k + blk * 210 + 208, 0.02f * static_cast<float>(trial + 1));
    }
    float y4[512], y6[512];
    dequantize_row(TensorType::Q4_K, q4k, y4, 512);
    dequantize_row(TensorType::Q6_K, q6k, y6, 512);
    for (size_t i = 0; i < 512; ++i) {
      ASSERT_FLOAT_EQ(y4[i], q4_k_reference(q4k + (i / 256) * 144, i % 256)) << i;
      ASSERT_FLOAT_EQ(y6[i], q6_k_reference(q6k + (i / 256) * 210, i % 256)) << i;
    }
  }
}

}  // namespace
}  // namespace h2o
