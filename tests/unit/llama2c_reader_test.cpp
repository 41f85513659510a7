// llama2.c legacy checkpoint reader: the shared checkpoints' configs, their weights against
// the GGUF conversions bit for bit, the fixed tensor order on a synthetic file, and every
// kind of bad header or size giving a one-line h2o::Error.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "format/inspect.h"
#include "format/llama2c.h"
#include "test_errors.h"
#include "test_paths.h"

namespace h2o {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string write_temp(const std::string& name, const Bytes& b) {
  const std::string path = ::testing::TempDir() + "h2o_l2c_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return path;
}

std::string open_error(const std::string& path) {
  try {
    Llama2cCheckpoint::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult rejects(const std::string& path, const std::string& expected) {
  return test::is_error(open_error(path), path, expected);
}

void put_i32(Bytes& b, size_t field, int32_t v) { std::memcpy(b.data() + 4 * field, &v, 4); }

TEST(Llama2cReader, Stories260KConfig) {
  const auto ck = Llama2cCheckpoint::open(test::model_path("stories260K.bin"));
  const Llama2cConfig& c = ck.config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(ck.weights().wcls, ck.weights().token_embedding);
  EXPECT_EQ(ck.path(), test::model_path("stories260K.bin"));
}

TEST(Llama2cReader, Books4MConfig) {
  const auto ck = Llama2cCheckpoint::open(test::model_path("books4M.bin"));
  const Llama2cConfig& c = ck.config();
  EXPECT_EQ(c.dim, 256);
  EXPECT_EQ(c.hidden_dim, 688);
  EXPECT_EQ(c.n_layers, 6);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
}

// GGUF ne = [in, out] holds the same bytes as the row-major [out][in] llama2.c array, and
// llama.cpp's converter copies wq/wk unpermuted: every tensor must match bit for bit.
void expect_same_weights(const char* bin, const char* gguf) {
  SCOPED_TRACE(bin);
  const auto ck = Llama2cCheckpoint::open(test::model_path(bin));
  const auto g = GgufFile::open(test::model_path(gguf));
  const Llama2cConfig& c = ck.config();
  const Llama2cWeights& w = ck.weights();
  const size_t dim = static_cast<size_t>(c.dim), hidden = static_cast<size_t>(c.hidden_dim);
  const size_t kv_dim = dim * static_cast<size_t>(c.n_kv_heads) / static_cast<size_t>(c.n_heads);
  const size_t vocab = static_cast<size_t>(c.vocab_size);

  const auto same = [&](const std::string& name, const float* p, size_t n,
                        std::vector<uint64_t> ne) {
    const GgufTensor* t = g.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->type, TensorType::F32) << name;
    ASSERT_EQ(t->ne, ne) << name;
    ASSERT_EQ(t->n_elements, n) << name;
    EXPECT_EQ(std::memcmp(t->data, p, n * sizeof(float)), 0) << name;
  };
  same("token_embd.weight", w.token_embedding, vocab * dim, {dim, vocab});
  same("output.weight", w.wcls, vocab * dim, {dim, vocab});
  same("output_norm.weight", w.rms_final, dim, {dim});
  for (size_t l = 0; l < static_cast<size_t>(c.n_layers); ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    same(b + "attn_norm.weight", w.rms_att + l * dim, dim, {dim});
    same(b + "ffn_norm.weight", w.rms_ffn + l * dim, dim, {dim});
    same(b + "attn_q.weight", w.wq + l * dim * dim, dim * dim, {dim, dim});
    same(b + "attn_k.weight", w.wk + l * kv_dim * dim, kv_dim * dim, {dim, kv_dim});
    same(b + "attn_v.weight", w.wv + l * kv_dim * dim, kv_dim * dim, {dim, kv_dim});
    same(b + "attn_output.weight", w.wo + l * dim * dim, dim * dim, {dim, dim});
    same(b + "ffn_gate.weight", w.w1 + l * hidden * dim, hidden * dim, {dim, hidden});
    same(b + "ffn_down.weight", w.w2 + l * dim * hidden, dim * hidden, {hidden, dim});
    same(b + "ffn_up.weight", w.w3 + l * hidden * dim, hidden * dim, {dim, hidden});
  }
}

TEST(Llama2cReader, WeightsEqualF32GgufBitForBit) {
  expect_same_weights("stories260K.bin", "stories260K-f32.gguf");
  expect_same_weights("books4M.bin", "books4M-f32.gguf");
}

// A synthetic checkpoint whose float i holds the value i shows where each tensor starts.
struct Shape {
  int32_t dim = 8, hidden = 6, layers = 2, heads = 2, kv_heads = 1, vocab = 5, seq = 3;
};

Bytes synthetic_checkpoint(const Shape& s, size_t* n_floats_out = nullptr) {
  const size_t dim = static_cast<size_t>(s.dim), hidden = static_cast<size_t>(s.hidden);
  const size_t layers = static_cast<size_t>(s.layers);
  const size_t head = dim / static_cast<size_t>(s.heads);
  const size_t kv = head * static_cast<size_t>(s.kv_heads);
  const size_t vocab = static_cast<size_t>(s.vocab < 0 ? -s.vocab : s.vocab);
  size_t n = vocab * dim + layers * (dim + dim * dim + 2 * kv * dim + dim * dim + dim +
                                     3 * hidden * dim) +
             dim + static_cast<size_t>(s.seq) * head;
  if (s.vocab < 0) n += vocab * dim;
  if (n_floats_out != nullptr) *n_floats_out = n;
  Bytes b(28 + 4 * n);
  const int32_t header[7] = {s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.seq};
  std::memcpy(b.data(), header, sizeof header);
  for (size_t i = 0; i < n; ++i) {
    const auto v = static_cast<float>(i);
    std::memcpy(b.data() + 28 + 4 * i, &v, 4);
  }
  return b;
}

TEST(Llama2cReader, TensorOrderFollowsRunC) {
  for (const bool separate_classifier : {false, true}) {
    Shape s;
    if (separate_classifier) s.vocab = -s.vocab;
    size_t n = 0;
    const std::string path = write_temp("layout.bin", synthetic_checkpoint(s, &n));
    const auto ck = Llama2cCheckpoint::open(path);
    const Llama2cWeights& w = ck.weights();
    EXPECT_EQ(ck.config().vocab_size, 5);
    EXPECT_EQ(ck.config().shared_classifier, !separate_classifier);
    // dim 8, hidden 6, 2 layers, head size 4, kv dim 4, vocab 5, seq 3.
    float at = 0;
    const auto expect_at = [&](const float* p, const char* name, float size) {
      EXPECT_EQ(p[0], at) << name;
      at += size;
    };
    expect_at(w.token_embedding, "token_embedding", 5 * 8);
    expect_at(w.rms_att, "rms_att", 2 * 8);
    expect_at(w.wq, "wq", 2 * 8 * 8);
    expect_at(w.wk, "wk", 2 * 4 * 8);
    expect_at(w.wv, "wv", 2 * 4 * 8);
    expect_at(w.wo, "wo", 2 * 8 * 8);
    expect_at(w.rms_ffn, "rms_ffn", 2 * 8);
    expect_at(w.w1, "w1", 2 * 6 * 8);
    expect_at(w.w2, "w2", 2 * 8 * 6);
    expect_at(w.w3, "w3", 2 * 6 * 8);
    expect_at(w.rms_final, "rms_final", 8);
    at += 3 * 4;  // freq_cis_real + freq_cis_imag: seq_len * head_size / 2 each
    if (separate_classifier) {
      expect_at(w.wcls, "wcls", 5 * 8);
      EXPECT_EQ(w.wcls[5 * 8 - 1], static_cast<float>(n - 1));  // the last float in the file
    } else {
      EXPECT_EQ(w.wcls, w.token_embedding);
    }
    EXPECT_EQ(static_cast<size_t>(at), n);
  }
}

TEST(Llama2cReader, WrongSizesNameExpectedAndActual) {
  const Bytes good = read_bytes(test::model_path("stories260K.bin"));
  ASSERT_EQ(good.size(), 1056540u);
  const std::string truncated =
      write_temp("truncated.bin", Bytes(good.begin(), good.end() - 4));
  EXPECT_TRUE(rejects(truncated, "file is 1056536 bytes"));
  EXPECT_TRUE(rejects(truncated, "must be exactly 1056540 bytes (truncated)"));
  Bytes longer = good;
  longer.insert(longer.end(), {0, 0, 0, 0});
  EXPECT_TRUE(rejects(write_temp("trailing.bin", longer), "must be exactly 1056540 bytes (trailing data)"));
  Bytes one_more = good;
  one_more.push_back(0);
  EXPECT_TRUE(rejects(write_temp("one_more.bin", one_more), "file is 1056541 bytes"));
  // A file that ends inside the header.
  EXPECT_TRUE(rejects(write_temp("short.bin", Bytes(good.begin(), good.begin() + 27)),
                      "too short for the 28-byte llama2.c header"));
  EXPECT_TRUE(rejects(write_temp("empty.bin", {}), "file is 0 bytes"));
  // Only the header: every cut through the weights is a size error, never a crash.
  for (size_t cut : {size_t{28}, size_t{29}, size_t{1000}, good.size() / 2, good.size() - 1}) {
    EXPECT_TRUE(rejects(write_temp("cut.bin", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut))),
                        "truncated"))
        << cut;
  }
  // vocab flipped negative: a separate classifier would need vocab*dim more floats.
  Bytes separate = good;
  put_i32(separate, 5, -512);
  EXPECT_TRUE(rejects(write_temp("separate.bin", separate), "(separate classifier)"));
}

TEST(Llama2cReader, OtherFormatsAreNamed) {
  Bytes v1 = read_bytes(test::model_path("stories260K.bin"));
  const uint32_t magic = 0x616b3432;
  std::memcpy(v1.data(), &magic, 4);
  EXPECT_TRUE(rejects(write_temp("v1.bin", v1), "version 1/2 checkpoints"));
  EXPECT_TRUE(rejects(write_temp("ak42.bin", {'2', '4', 'k', 'a', 2, 0, 0, 0}), "version 1/2"));
  const std::string gguf = test::model_path("stories260K-f32.gguf");
  EXPECT_TRUE(rejects(gguf, "is a GGUF file, not a llama2.c checkpoint"));
  EXPECT_TRUE(rejects(test::model_path("tok512.bin"), "out of range"));
}

TEST(Llama2cReader, BadHeaderFields) {
  const Bytes good = read_bytes(test::model_path("stories260K.bin"));
  struct Case {
    size_t field;
    int32_t value;
    const char* expected;
  };
  const Case cases[] = {
      {0, 0, "dim = 0 is out of range"},
      {0, -64, "dim = -64 is out of range"},
      {0, INT_MAX, "dim = 2147483647 is out of range"},
      {1, 0, "hidden_dim = 0"},
      {2, 0, "n_layers = 0"},
      {2, 1 << 20, "n_layers = 1048576"},
      {3, 0, "n_heads = 0"},
      {3, 7, "n_heads 7 does not divide dim 64"},
      {3, 128, "n_heads = 128 is out of range (1 to 64)"},
      {4, 3, "n_kv_heads 3 does not divide n_heads 8"},
      {4, 16, "n_kv_heads = 16 is out of range (1 to 8)"},
      {4, -4, "n_kv_heads = -4"},
      {5, 0, "|vocab_size| = 0"},
      {5, INT_MIN, "|vocab_size| = 2147483648"},
      {5, 1 << 30, "|vocab_size| = 1073741824"},
      {6, 0, "seq_len = 0"},
      {6, INT_MAX, "seq_len = 2147483647"},
      {3, 64, "head size 1 (dim 64 / n_heads 64) is odd"},
  };
  for (const Case& c : cases) {
    Bytes b = good;
    put_i32(b, c.field, c.value);
    EXPECT_TRUE(rejects(write_temp("header.bin", b), c.expected)) << c.expected;
  }
}

TEST(Llama2cReader, Paths) {
  const std::string dir = ::testing::TempDir();
  EXPECT_TRUE(rejects(dir, "is a directory"));
  const std::string missing = dir + "h2o_l2c_missing.bin";
  std::filesystem::remove(missing);
  EXPECT_TRUE(rejects(missing, "no such file"));
}

TEST(Llama2cReader, InspectReport) {
  const std::string path = test::model_path("stories260K.bin");
  EXPECT_EQ(detect_model_format(path), ModelFormat::LLAMA2C);
  const InspectReport r = inspect_model(path);
  EXPECT_EQ(r.format, ModelFormat::LLAMA2C);
  ASSERT_EQ(r.tensors.size(), 11u);  // shared classifier: no wcls
  EXPECT_EQ(r.tensors[0].name, "token_embedding_table");
  EXPECT_EQ(r.tensors[0].shape, (std::vector<uint64_t>{64, 512}));
  EXPECT_EQ(r.tensors[0].offset, 28u);
  // Parameters: the checkpoint minus header and the unused freq_cis block (512 * 8 floats).
  EXPECT_EQ(r.total_bytes, 1056540u - 28u - 512u * 8u * 4u);
  EXPECT_EQ(r.total_params * 4, r.total_bytes);
  // Same parameters as the GGUF conversion minus its separate copy of the classifier.
  const InspectReport gg = inspect_model(test::model_path("stories260K-f32.gguf"));
  EXPECT_EQ(r.total_params, gg.total_params - 512u * 64u);
  const nlohmann::json j = report_to_json(r);
  EXPECT_EQ(j["format"], "llama2c");
  EXPECT_EQ(j["metadata"][0]["key"], "dim");
  EXPECT_EQ(j["metadata"][0]["value"], "64");
  EXPECT_NE(report_to_text(r).find("n_kv_heads"), std::string::npos);
}

}  // namespace
}  // namespace h2o
