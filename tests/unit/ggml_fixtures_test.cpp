// h2o against files written by llama.cpp itself (tests/fixtures/ggml/, made by
// scripts/llama_fixtures.sh from llama.cpp's llama-quantize and ggml's own decoder):
//   - every tensor decodes to the same floats, bit for bit, as ggml's dequantize_row_*
//     (compared through an FNV-1a hash of the float bits, which ggml_fixture.c computes the
//     same way);
//   - the encoders write the bytes llama-quantize wrote for the same rows of
//     books4M-f32.gguf.
// The fixtures hold the first 32 rows of one tensor of each quantized type of books4M
// quantized into every type and mix h2o runs. LlamaFiles.* (skipped unless H2O_LLAMA_FILES
// names scripts/llama_fixtures.sh's output directory) does the same for every tensor of the
// whole files, checks the per-tensor plan of `h2o quantize` against llama-quantize's
// choices, and that the files `h2o quantize` writes are llama-quantize's byte for byte.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/quantize_model.h"
#include "format/tensor_type.h"
#include "test_paths.h"

namespace h2o {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir() { return std::string(H2O_SOURCE_DIR) + "/tests/fixtures/ggml"; }

// FNV-1a 64 over the float bits of a tensor decoded row by row (ggml_fixture.c's hash).
uint64_t decoded_hash(const GgufTensor& t) {
  const auto cols = static_cast<size_t>(t.ne[0]);
  const size_t rows = t.n_elements / cols, rb = row_bytes(t.type, cols);
  std::vector<float> row(cols);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t r = 0; r < rows; ++r) {
    dequantize_row(t.type, t.data + r * rb, row.data(), cols);
    for (float v : row) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      for (int b = 0; b < 4; ++b) {
        h ^= (u >> (8 * b)) & 0xFF;
        h *= 0x100000001b3ull;
      }
    }
  }
  return h;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct HashLine {
  std::string tensor, type;
  uint64_t rows = 0;
  std::string hash;
};

// "NAME TYPE ROWS HASH" lines (ggml_fixture hash), optionally prefixed by a file name.
std::vector<std::pair<std::string, HashLine>> read_hashes(const std::string& path, bool with_file) {
  std::ifstream in(path);
  std::vector<std::pair<std::string, HashLine>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string file;
    HashLine h;
    if (with_file) ss >> file;
    ss >> h.tensor >> h.type >> h.rows >> h.hash;
    if (!h.tensor.empty()) out.emplace_back(file, h);
  }
  return out;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

TEST(GgmlFixtures, EveryTensorDecodesAsGgmlDecodesIt) {
  const auto lines = read_hashes(fixture_dir() + "/hashes.txt", true);
  ASSERT_GE(lines.size(), 24u);
  std::map<std::string, int> types_seen;
  for (const auto& [file, h] : lines) {
    const GgufFile g = GgufFile::open(fixture_dir() + "/" + file);
    const GgufTensor* t = g.find_tensor(h.tensor);
    ASSERT_NE(t, nullptr) << file << " " << h.tensor;
    EXPECT_EQ(lower(std::string(traits(t->type).name)), lower(h.type)) << file << " " << h.tensor;
    EXPECT_EQ(hex(decoded_hash(*t)), h.hash) << file << " " << h.tensor << " (" << h.type << ")";
    ++types_seen[lower(h.type)];
  }
  // Every quantized type h2o runs appears in the fixtures.
  for (const char* t : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"}) {
    EXPECT_GT(types_seen[t], 0) << t;
  }
}

// The encoders give llama-quantize's bytes for the same source rows.
TEST(GgmlFixtures, EncodersWriteTheBytesLlamaQuantizeWrote) {
  const GgufFile src = GgufFile::open(test::shared_path("models/books4M-f32.gguf"));
  const auto lines = read_hashes(fixture_dir() + "/hashes.txt", true);
  for (const auto& [file, h] : lines) {
    const GgufFile g = GgufFile::open(fixture_dir() + "/" + file);
    const GgufTensor* t = g.find_tensor(h.tensor);
    const GgufTensor* s = src.find_tensor(h.tensor);
    ASSERT_NE(s, nullptr) << h.tensor;
    ASSERT_EQ(s->type, TensorType::F32);
    const auto cols = static_cast<size_t>(t->ne[0]);
    const size_t rows = t->n_elements / cols, rb = row_bytes(t->type, cols);
    std::vector<uint8_t> mine(rb);
    for (size_t r = 0; r < rows; ++r) {
      quantize_row(t->type, reinterpret_cast<const float*>(s->data) + r * cols, mine.data(), cols);
      ASSERT_EQ(std::memcmp(mine.data(), t->data + r * rb, rb), 0)
          << file << " " << h.tensor << " (" << h.type << ") row " << r;
    }
  }
}

// ---- whole files (scripts/llama_fixtures.sh's output; not in CI)

std::string llama_files() {
  const char* d = std::getenv("H2O_LLAMA_FILES");
  return d ? d : "";
}

TEST(LlamaFiles, EveryTensorOfEveryFileDecodesAsGgml) {
  if (llama_files().empty()) GTEST_SKIP() << "set H2O_LLAMA_FILES (scripts/llama_fixtures.sh)";
  int files = 0;
  for (const auto& e : fs::directory_iterator(llama_files())) {
    if (e.path().extension() != ".ggml-hashes") continue;
    const std::string gguf = fs::path(e.path()).replace_extension(".gguf").string();
    const GgufFile g = GgufFile::open(gguf);
    for (const auto& [unused, h] : read_hashes(e.path().string(), false)) {
      const GgufTensor* t = g.find_tensor(h.tensor);
      ASSERT_NE(t, nullptr) << gguf << " " << h.tensor;
      EXPECT_EQ(hex(decoded_hash(*t)), h.hash) << gguf << " " << h.tensor << " (" << h.type << ")";
    }
    ++files;
  }
  EXPECT_GT(files, 0);
}

// `h2o quantize` of books4M-f32 gives llama-quantize's file: the same type for every
// tensor, the same bytes for every tensor.
TEST(LlamaFiles, QuantizeWritesWhatLlamaQuantizeWrites) {
  if (llama_files().empty()) GTEST_SKIP() << "set H2O_LLAMA_FILES (scripts/llama_fixtures.sh)";
  const GgufFile src = GgufFile::open(test::shared_path("models/books4M-f32.gguf"));
  for (const auto& e : fs::directory_iterator(llama_files())) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".gguf" || name.rfind("books4M-", 0) != 0) continue;
    const std::string mix = name.substr(8, name.size() - 8 - 5);
    const GgufFile theirs = GgufFile::open(e.path().string());
    const QuantizePlan plan = plan_quantization(src, mix);
    const std::string out = (fs::temp_directory_path() / ("h2o-quantize-" + mix + ".gguf")).string();
    write_quantized(src, plan, out, 2);
    const GgufFile mine = GgufFile::open(out);
    ASSERT_EQ(mine.tensors().size(), theirs.tensors().size()) << mix;
    size_t same = 0;
    for (const GgufTensor& t : theirs.tensors()) {
      const GgufTensor* m = mine.find_tensor(t.name);
      ASSERT_NE(m, nullptr) << mix << " " << t.name;
      EXPECT_EQ(traits(m->type).name, traits(t.type).name) << mix << " " << t.name;
      if (m->type != t.type || m->n_bytes != t.n_bytes) continue;
      const bool equal = std::memcmp(m->data, t.data, t.n_bytes) == 0;
      EXPECT_TRUE(equal) << mix << " " << t.name << " (" << traits(t.type).name << "): bytes differ";
      same += equal;
    }
    EXPECT_EQ(mine.get_int("general.file_type"), theirs.get_int("general.file_type")) << mix;
    std::printf("[          ] %s: %zu of %zu tensors byte-identical\n", mix.c_str(), same, theirs.tensors().size());
    fs::remove(out);
  }
}

}  // namespace
}  // namespace h2o
