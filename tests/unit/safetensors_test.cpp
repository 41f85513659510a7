// safetensors reader and Hugging Face checkpoints: the shared HF fixtures (names, dtypes,
// shapes, values decoded by hand from the file bytes and cross-checked against their GGUF
// twins), sharded checkpoints written here, and a catalogue of hostile files (each must
// give a one-line h2o::Error naming the file, never a crash or an out-of-file read).
#include "format/safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "format/gguf.h"
#include "format/tensor_type.h"
#include "test_errors.h"
#include "test_paths.h"

namespace h2o {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

std::string family_path(const std::string& rel) { return test::model_path("families/" + rel); }

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Independent decoders (no engine code): BF16 is the top half of an f32; F16 by its fields.
float bf16_bits_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
float f16_bits_to_float(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mant + 1024), exp - 25);
}
uint16_t u16_at(const uint8_t* p, size_t i) { return static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)); }

// ---- building files --------------------------------------------------------------------

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  Bytes data;
};

Bytes with_length(const std::string& header, const Bytes& data) {
  const uint64_t n = header.size();
  Bytes b(8 + header.size() + data.size());
  std::memcpy(b.data(), &n, 8);
  std::copy(header.begin(), header.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + static_cast<long>(header.size()));
  return b;
}

// A well-formed file: tensors laid out in the given order, header padded with spaces to a
// multiple of 8 as the reference writer does.
Bytes build(const std::vector<Entry>& entries, const nlohmann::json& metadata = {{"format", "pt"}}) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  Bytes data;
  for (const auto& e : entries) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + e.data.size()}}};
    data.insert(data.end(), e.data.begin(), e.data.end());
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  return with_length(header, data);
}

Bytes f32_bytes(std::initializer_list<float> v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), std::data(v), b.size());
  return b;
}

// Parses a copy in an exact-size heap buffer, so that AddressSanitizer catches any read past
// its end. Returns the error message, or "" if parsing succeeded.
std::string parse_error(const Bytes& bytes) {
  const Bytes copy(bytes);
  try {
    SafetensorsFile::parse(copy, "test.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult rejects(const Bytes& bytes, const std::string& expected) {
  return test::is_error(parse_error(bytes), "test.safetensors", expected);
}

// A header written by hand over `data_bytes` zero bytes of data.
::testing::AssertionResult rejects_header(const std::string& header, size_t data_bytes, const std::string& expected) {
  return rejects(with_length(header, Bytes(data_bytes)), expected);
}

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("h2o_st_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

using test::error_of;

// ---- the shared HF fixtures ---------------------------------------------------------------

TEST(SafetensorsFixtures, LlamaTinyNamesShapesDtypesAndValues) {
  const std::string path = family_path("llama-tiny/model.safetensors");
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.header_bytes(), 2120u);
  ASSERT_EQ(f.tensors().size(), 20u);  // embed, 2 x 9 per layer, norm; tied: no lm_head
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);
  // File order is data order: the embedding first, the final norm last.
  EXPECT_EQ(f.tensors().front().name, "model.embed_tokens.weight");
  EXPECT_EQ(f.tensors().back().name, "model.norm.weight");

  const auto* emb = f.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, SafetensorsDtype::BF16);
  EXPECT_EQ(emb->shape, (std::vector<uint64_t>{128256, 32}));
  EXPECT_EQ(emb->n_elements, 128256u * 32);
  EXPECT_EQ(emb->n_bytes, 128256u * 32 * 2);
  EXPECT_EQ(emb->offset, 0u);
  EXPECT_EQ(emb->weight_type(), TensorType::BF16);
  const auto* k = f.find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<uint64_t>{16, 32}));  // [Hkv*dh, D], PyTorch order
  EXPECT_EQ(f.find("model.layers.0.mlp.down_proj.weight")->shape, (std::vector<uint64_t>{32, 128}));

  // The same bytes read independently: 8 + N + BEGIN, N from the file's first 8 bytes.
  const Bytes raw = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n, 2120u);
  EXPECT_EQ(0, std::memcmp(emb->data, raw.data() + 8 + n, 64));
  const auto* norm = f.find("model.norm.weight");
  EXPECT_EQ(norm->data + norm->n_bytes, f.tensors().front().data + (raw.size() - 8 - n));  // ends the file
  EXPECT_EQ(0, std::memcmp(norm->data, raw.data() + raw.size() - 64, 64));
  // Values decoded by hand (python struct) from the fixture.
  EXPECT_EQ(u16_at(norm->data, 0), 0x3f87);
  EXPECT_EQ(bf16_bits_to_float(u16_at(norm->data, 0)), 1.0546875f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(norm->data, 1)), 0.875f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(norm->data, 31)), 1.0625f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(emb->data, 0)), -0.89453125f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(emb->data, 1)), -0.91796875f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(emb->data, 128255 * 32 + 31)), -0.5f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(k->data, 0)), 0.2041015625f);
  EXPECT_EQ(bf16_bits_to_float(u16_at(k->data, 5 * 32 + 7)), 0.1650390625f);
}

TEST(SafetensorsFixtures, NeoxTinyAndOptTiny) {
  const SafetensorsFile neox = SafetensorsFile::open(family_path("neox-tiny/model.safetensors"));
  ASSERT_EQ(neox.tensors().size(), 28u);
  const auto* qkv = neox.find("gpt_neox.layers.0.attention.query_key_value.weight");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->dtype, SafetensorsDtype::F16);
  EXPECT_EQ(qkv->shape, (std::vector<uint64_t>{96, 32}));  // [3D, D]
  EXPECT_EQ(qkv->weight_type(), TensorType::F16);
  EXPECT_EQ(f16_bits_to_float(u16_at(qkv->data, 0)), 0.2401123046875f);
  EXPECT_EQ(f16_bits_to_float(u16_at(qkv->data, 95 * 32 + 31)), -0.1917724609375f);
  const auto* out = neox.find("embed_out.weight");
  EXPECT_EQ(out->shape, (std::vector<uint64_t>{50304, 32}));
  EXPECT_EQ(f16_bits_to_float(u16_at(out->data, 0)), -0.10205078125f);
  EXPECT_EQ(f16_bits_to_float(u16_at(out->data, 50303 * 32 + 31)), 0.5693359375f);
  EXPECT_EQ(neox.find("gpt_neox.final_layer_norm.bias")->shape, (std::vector<uint64_t>{32}));

  const SafetensorsFile opt = SafetensorsFile::open(family_path("opt-tiny/model.safetensors"));
  ASSERT_EQ(opt.tensors().size(), 36u);
  EXPECT_EQ(opt.find("lm_head.weight"), nullptr);  // tied to embed_tokens
  const auto* pos = opt.find("model.decoder.embed_positions.weight");
  ASSERT_NE(pos, nullptr);
  EXPECT_EQ(pos->shape, (std::vector<uint64_t>{2050, 32}));  // max_position_embeddings + 2 rows
  EXPECT_EQ(f16_bits_to_float(u16_at(pos->data, 0)), 0.428466796875f);
  EXPECT_EQ(f16_bits_to_float(u16_at(pos->data, 2 * 32)), -0.32958984375f);
  EXPECT_EQ(f16_bits_to_float(u16_at(pos->data, 2049 * 32 + 31)), 0.96240234375f);
  const auto* b2 = opt.find("model.decoder.layers.1.fc2.bias");
  EXPECT_EQ(f16_bits_to_float(u16_at(b2->data, 0)), 0.07781982421875f);
  EXPECT_EQ(f16_bits_to_float(u16_at(b2->data, 31)), 0.13134765625f);
  EXPECT_EQ(opt.find("model.decoder.embed_tokens.weight")->shape, (std::vector<uint64_t>{50272, 32}));
}

// Every tensor of every fixture: inside the file, tiling it, sizes consistent.
TEST(SafetensorsFixtures, TensorsTileEachFile) {
  for (const char* dir : {"llama-tiny", "neox-tiny", "opt-tiny"}) {
    const std::string path = family_path(std::string(dir) + "/model.safetensors");
    const SafetensorsFile f = SafetensorsFile::open(path);
    const uint64_t file_size = fs::file_size(path);
    uint64_t next = 0;
    for (const auto& t : f.tensors()) {
      EXPECT_EQ(t.offset, next) << dir << " " << t.name;
      uint64_t elems = 1;
      for (uint64_t d : t.shape) elems *= d;
      EXPECT_EQ(t.n_elements, elems);
      EXPECT_EQ(t.n_bytes, elems * 2);
      EXPECT_EQ(t.file, path);
      EXPECT_TRUE(t.data_aligned());
      next = t.offset + t.n_bytes;
    }
    EXPECT_EQ(8 + f.header_bytes() + next, file_size) << dir;
  }
}

// The HF directories hold the same weights as their GGUF twins (GGUF ne is PyTorch's shape
// reversed; the GGUF files store F16 matrices and F32 norms and biases where the HF files
// have BF16 or F16). Q/K rows and NeoX's fused QKV are reordered in GGUF, so not compared.
TEST(SafetensorsFixtures, SameWeightsAsTheGgufTwins) {
  struct Twin {
    const char* hf_dir;
    const char* gguf;
    std::vector<std::pair<const char*, const char*>> names;  // HF name, GGUF name
  };
  const Twin twins[] = {
      {"llama-tiny",
       "llama3-tiny.gguf",
       {{"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight"},
        {"model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"}}},
      {"neox-tiny",
       "neox-tiny.gguf",
       {{"embed_out.weight", "output.weight"},
        {"gpt_neox.layers.1.mlp.dense_4h_to_h.weight", "blk.1.ffn_down.weight"},
        {"gpt_neox.layers.1.input_layernorm.bias", "blk.1.attn_norm.bias"}}},
  };
  for (const auto& twin : twins) {
    const SafetensorsCheckpoint hf = SafetensorsCheckpoint::open_dir(family_path(twin.hf_dir));
    const GgufFile g = GgufFile::open(family_path(twin.gguf));
    for (const auto& [hf_name, gguf_name] : twin.names) {
      SCOPED_TRACE(hf_name);
      const SafetensorsTensor& t = hf.require(hf_name);
      const GgufTensor* gt = g.find_tensor(gguf_name);
      ASSERT_NE(gt, nullptr);
      ASSERT_EQ(std::vector<uint64_t>(t.shape.rbegin(), t.shape.rend()), gt->ne);
      ASSERT_EQ(t.n_elements, gt->n_elements);
      std::vector<float> want(gt->n_elements);
      dequantize_row(gt->type, gt->data, want.data(), want.size());
      size_t mismatches = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const uint16_t bits = u16_at(t.data, i);
        const float got = t.dtype == SafetensorsDtype::BF16 ? bf16_bits_to_float(bits) : f16_bits_to_float(bits);
        mismatches += got != want[i];
      }
      EXPECT_EQ(mismatches, 0u);
    }
  }
}

// The fuzz seeds (fuzz/corpus/safetensors_fuzz): the shrunk copies of the fixtures and the edge
// file are valid, so the fuzzer starts from the whole valid path; the bare headers are not.
TEST(SafetensorsFixtures, FuzzSeeds) {
  const fs::path dir = fs::path(H2O_SOURCE_DIR) / "fuzz/corpus/safetensors_fuzz";
  size_t valid = 0, headers = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string path = entry.path().string();
    SCOPED_TRACE(path);
    if (path.ends_with(".safetensors")) {
      EXPECT_FALSE(SafetensorsFile::open(path).tensors().empty());
      ++valid;
    } else if (path.ends_with(".header")) {
      EXPECT_NE(error_of([&] { SafetensorsFile::open(path); }).find("lie outside the 0-byte data buffer"),
                std::string::npos);
      ++headers;
    }
  }
  EXPECT_EQ(valid, 4u);
  EXPECT_EQ(headers, 3u);
  EXPECT_EQ(SafetensorsFile::open((dir / "opt-tiny.mini.safetensors").string()).tensors().size(), 36u);
}

// ---- well-formed edge cases ---------------------------------------------------------------

TEST(Safetensors, ScalarsEmptyTensorsWhitespaceAndOtherDtypes) {
  Bytes i64(8);
  const int64_t v = -7;
  std::memcpy(i64.data(), &v, 8);
  const Bytes bytes = build({{"scalar", "F32", {}, f32_bytes({2.5f})},
                             {"empty", "F16", {3, 0, 4}, {}},
                             {"also_empty", "BF16", {0}, {}},
                             {"count", "I64", {1}, i64},
                             {"mat", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})}});
  const SafetensorsFile f = SafetensorsFile::parse(bytes, "t.safetensors");
  ASSERT_EQ(f.tensors().size(), 5u);
  const auto* s = f.find("scalar");
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->n_elements, 1u);
  float x = 0;
  std::memcpy(&x, s->data, 4);
  EXPECT_EQ(x, 2.5f);
  EXPECT_EQ(f.find("empty")->n_elements, 0u);
  EXPECT_EQ(f.find("empty")->n_bytes, 0u);
  EXPECT_EQ(f.find("also_empty")->offset, 4u);  // both empty tensors sit where "count" begins
  EXPECT_EQ(f.find("count")->offset, 4u);
  int64_t got = 0;
  std::memcpy(&got, f.find("count")->data, 8);
  EXPECT_EQ(got, -7);
  // Parsed, but not usable as weights.
  const std::string msg = error_of([&] { (void)f.find("count")->weight_type(); });
  EXPECT_EQ(msg, "t.safetensors: tensor \"count\" has dtype I64; weights must be F32, F16 or BF16");
  EXPECT_EQ(f.find("mat")->weight_type(), TensorType::F32);
  EXPECT_EQ(f.find("nope"), nullptr);

  // Leading and trailing whitespace around the JSON, no metadata, unknown fields ignored.
  const Bytes ws =
      with_length(" \n\t{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3],\"x\":1}}  \n ", Bytes{1, 2, 3});
  const SafetensorsFile g = SafetensorsFile::parse(ws, "ws");
  EXPECT_EQ(g.find("a")->data[2], 3);
  EXPECT_TRUE(g.metadata().empty());
  // No tensors at all is a valid (empty) file; so is a null __metadata__.
  EXPECT_TRUE(SafetensorsFile::parse(with_length("{}", {}), "e").tensors().empty());
  EXPECT_TRUE(SafetensorsFile::parse(with_length("{\"__metadata__\":null}", {}), "e").tensors().empty());
  // Sub-byte dtypes whose bits make whole bytes.
  EXPECT_EQ(SafetensorsFile::parse(build({{"q", "F4", {2, 3}, Bytes(3)}}), "f4").find("q")->n_bytes, 3u);
  EXPECT_EQ(SafetensorsFile::parse(build({{"q", "F6_E2M3", {4}, Bytes(3)}}), "f6").find("q")->n_bytes, 3u);
}

TEST(Safetensors, DtypeTable) {
  EXPECT_EQ(dtype_bits(SafetensorsDtype::BF16), 16u);
  EXPECT_EQ(dtype_bits(SafetensorsDtype::F8_E4M3), 8u);
  EXPECT_EQ(dtype_bits(SafetensorsDtype::C64), 64u);
  for (const char* name : {"BOOL",    "U8",          "I8",          "I16", "U16",     "F16",    "BF16",    "I32",
                           "U32",     "F32",         "F64",         "C64", "I64",     "U64",    "F8_E4M3", "F8_E5M2",
                           "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4",  "F6_E2M3", "F6_E3M2"}) {
    const auto d = parse_dtype(name);
    ASSERT_TRUE(d.has_value()) << name;
    EXPECT_EQ(dtype_name(*d), name);
  }
  EXPECT_FALSE(parse_dtype("f32").has_value());
  EXPECT_FALSE(parse_dtype("Q4_0").has_value());
  EXPECT_EQ(engine_type(SafetensorsDtype::F16), TensorType::F16);
  EXPECT_FALSE(engine_type(SafetensorsDtype::F64).has_value());
}

TEST(Safetensors, UnalignedDataIsReportedAndStillReadable) {
  // A header of odd length (no padding) puts the F32 data at an odd address of the buffer.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_NE((8 + header.size()) % 4, 0u);
  const Bytes bytes = with_length(header, f32_bytes({1.5f, -2}));
  // Copy into a buffer whose start is 4-aligned, so the data's alignment is the header's.
  std::vector<uint32_t> storage((bytes.size() + 3) / 4);
  std::memcpy(storage.data(), bytes.data(), bytes.size());
  const SafetensorsFile f = SafetensorsFile::parse({reinterpret_cast<uint8_t*>(storage.data()), bytes.size()}, "u");
  const auto* w = f.find("w");
  EXPECT_FALSE(w->data_aligned());
  float v[2];
  std::memcpy(v, w->data, 8);
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[1], -2.0f);
}

// ---- hostile files --------------------------------------------------------------------------

TEST(SafetensorsHostile, HeaderLength) {
  EXPECT_TRUE(rejects({}, "too short"));
  EXPECT_TRUE(rejects({1, 2, 3}, "3 bytes, too short"));
  Bytes b = build({{"w", "F32", {1}, f32_bytes({1})}});
  Bytes beyond = b;
  const uint64_t n = b.size();  // 8 bytes more than the header and data together
  std::memcpy(beyond.data(), &n, 8);
  EXPECT_TRUE(rejects(beyond, "runs past the end of the file"));
  Bytes huge = b;
  const uint64_t too_big = SafetensorsFile::kMaxHeaderBytes + 1;
  std::memcpy(huge.data(), &too_big, 8);
  EXPECT_TRUE(rejects(huge, "exceeds the limit of 100000000 bytes"));
  const uint64_t max64 = UINT64_MAX;
  std::memcpy(huge.data(), &max64, 8);
  EXPECT_TRUE(rejects(huge, "exceeds the limit"));
  // Every truncation of a valid file is rejected cleanly.
  for (size_t len = 0; len < b.size(); ++len) {
    EXPECT_FALSE(parse_error(Bytes(b.begin(), b.begin() + static_cast<long>(len))).empty()) << len;
  }
}

TEST(SafetensorsHostile, BadJson) {
  EXPECT_TRUE(rejects_header("", 0, "header: invalid JSON"));
  EXPECT_TRUE(rejects_header("{\"a\":", 0, "header: invalid JSON"));
  EXPECT_TRUE(rejects_header("{} x", 0, "header: invalid JSON"));
  EXPECT_TRUE(rejects_header("{\"a\":1}\n{}", 0, "invalid JSON"));
  EXPECT_TRUE(rejects_header("{\"\xff\":{}}", 0, "invalid JSON"));  // invalid UTF-8
  EXPECT_TRUE(rejects_header(std::string("{\0}", 3), 0, "invalid JSON"));
  EXPECT_TRUE(rejects_header("[]", 0, "header is array, expected a JSON object"));
  EXPECT_TRUE(rejects_header("\"x\"", 0, "header is string"));
  EXPECT_TRUE(rejects_header("null", 0, "header is null"));
  // Deep nesting is an ordinary value (the parser and destructor are iterative).
  EXPECT_TRUE(rejects_header("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0,
                             "entry is array, expected an object"));
}

TEST(SafetensorsHostile, DuplicateKeys) {
  const std::string e = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  EXPECT_TRUE(rejects_header("{\"a\":" + e + ",\"a\":" + e + "}", 1, "header: duplicate key \"a\""));
  EXPECT_TRUE(rejects_header(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1,
                             "duplicate key \"dtype\""));
  EXPECT_TRUE(rejects_header(R"({"__metadata__":{"k":"1","k":"2"}})", 0, "duplicate key \"k\""));
  // The same key in sibling objects is fine.
  EXPECT_EQ(parse_error(with_length(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                    R"("b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                    Bytes(2))),
            "");
}

TEST(SafetensorsHostile, Entries) {
  EXPECT_TRUE(rejects_header(R"({"w":5})", 0, "tensor \"w\": entry is number, expected an object"));
  EXPECT_TRUE(rejects_header(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, "tensor \"w\": dtype is missing"));
  EXPECT_TRUE(
      rejects_header(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, "dtype is missing or not a string"));
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, "shape is missing"));
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"F32","shape":[1]}})", 4, "data_offsets is missing"));
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4,
                             "tensor \"w\": unknown dtype \"F17\""));
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4, "unknown dtype \"f32\""));
  // A name with control characters stays on one line.
  EXPECT_TRUE(rejects_header("{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                             "tensor \"a\\nb\": unknown dtype"));
  EXPECT_TRUE(rejects_header(R"({"__metadata__":{"k":1}})", 0, "__metadata__ value of \"k\" is not a string"));
  EXPECT_TRUE(rejects_header(R"({"__metadata__":[]})", 0, "__metadata__ is array"));
}

TEST(SafetensorsHostile, Shapes) {
  const auto entry = [](const std::string& shape, uint64_t end) {
    return R"({"w":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,)" + std::to_string(end) + "]}}";
  };
  EXPECT_TRUE(rejects_header(entry("[-3]", 4), 4, "shape has -3, expected non-negative integers"));
  EXPECT_TRUE(rejects_header(entry("[1.5]", 4), 4, "shape has 1.5"));
  EXPECT_TRUE(rejects_header(entry("[1.0]", 4), 4, "shape has 1.0"));
  EXPECT_TRUE(rejects_header(entry("[\"4\"]", 4), 4, "shape has string"));
  EXPECT_TRUE(rejects_header(entry("[[1]]", 4), 4, "shape has array"));
  EXPECT_TRUE(rejects_header(entry("[true]", 4), 4, "shape has boolean"));
  EXPECT_TRUE(rejects_header(entry("[1e30]", 4), 4, "shape has 1e+30"));
  EXPECT_TRUE(rejects_header(entry("[18446744073709551616]", 4), 4, "shape has"));  // 2^64
  EXPECT_TRUE(rejects_header(entry("{}", 4), 4, "shape is missing or not an array"));
  // Products that overflow 64 bits, in elements or in bits.
  EXPECT_TRUE(rejects_header(entry("[4294967296, 4294967296]", 4), 4, "shape [4294967296, 4294967296] is too large"));
  EXPECT_TRUE(rejects_header(entry("[18446744073709551615]", 4), 4, "is too large"));
  EXPECT_TRUE(rejects_header(entry("[1152921504606846976]", 4), 4, "is too large"));  // 2^60 * 32 bits
  // A zero dimension makes any product 0 bytes (no overflow), and needs BEGIN == END.
  EXPECT_TRUE(rejects_header(entry("[4294967296, 4294967296, 0]", 4), 4, "span 4 bytes, but shape"));
  EXPECT_TRUE(rejects_header(entry("[1,1,1,1,1,1,1,1,1,1,2]", 4), 4, "shape [1, 1, 1, 1, 1, 1, 1, 1, ... (11 dims)]"));
  // numel * bits must be a whole number of bytes.
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2,
                             "shape [3] of F4 is not a whole number of bytes"));
  EXPECT_TRUE(rejects_header(R"({"w":{"dtype":"F6_E3M2","shape":[5],"data_offsets":[0,4]}})", 4,
                             "not a whole number of bytes"));
}

TEST(SafetensorsHostile, Offsets) {
  const auto one = [](const std::string& offsets) {
    return R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":)" + offsets + "}}";
  };
  EXPECT_TRUE(rejects_header(one("[0]"), 12, "data_offsets must be [BEGIN, END]"));
  EXPECT_TRUE(rejects_header(one("[0,12,12]"), 12, "data_offsets must be [BEGIN, END]"));
  EXPECT_TRUE(rejects_header(one("[-1,11]"), 12, "data_offsets must be"));
  EXPECT_TRUE(rejects_header(one("[0,12.0]"), 12, "data_offsets must be"));
  EXPECT_TRUE(rejects_header(one("{\"a\":0,\"b\":12}"), 12, "data_offsets is missing or not an array"));
  EXPECT_TRUE(rejects_header(one("[12,0]"), 12, "data_offsets [12, 0] end before they begin"));
  // Shape x dtype != byte span.
  EXPECT_TRUE(
      rejects_header(one("[0,10]"), 10, "data_offsets [0, 10] span 10 bytes, but shape [2, 3] of F16 needs 12"));
  EXPECT_TRUE(rejects_header(one("[0,24]"), 24, "span 24 bytes"));
  // Outside the file, including offsets near 2^64.
  EXPECT_TRUE(rejects_header(one("[0,12]"), 8, "tensor \"w\" data_offsets [0, 12] lie outside the 8-byte data buffer"));
  EXPECT_TRUE(rejects_header(one("[18446744073709551600,18446744073709551612]"), 12, "lie outside"));
  // Holes, overlaps and trailing bytes.
  EXPECT_TRUE(rejects_header(one("[4,16]"), 16, "data bytes [0, 4) before tensor \"w\" belong to no tensor"));
  EXPECT_TRUE(rejects_header(one("[0,12]"), 13, "1 bytes after the last tensor's data"));
  const std::string two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_TRUE(rejects_header(two, 12, "tensor \"b\" at bytes [4, 12) overlaps tensor \"a\" at [0, 8)"));
  const std::string same = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_TRUE(rejects_header(same, 8, "overlaps"));
  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_TRUE(rejects_header(gap, 12, "data bytes [4, 8) before tensor \"b\" belong to no tensor"));
  // An empty tensor strictly inside another one's bytes.
  const std::string inside = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})";
  EXPECT_TRUE(rejects_header(inside, 8, "tensor \"e\" at bytes [4, 4) overlaps tensor \"a\""));
  // Data with no tensors at all.
  EXPECT_TRUE(rejects_header("{}", 5, "5 bytes after the last tensor's data"));
}

// Random corruption of a valid file: any outcome but a crash or a multi-line message.
TEST(SafetensorsHostile, RandomByteFlipsNeverCrash) {
  const Bytes base = build({{"a", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})}, {"b", "BF16", {3}, Bytes(6)}});
  uint32_t state = 12345;
  for (int iter = 0; iter < 4000; ++iter) {
    Bytes b = base;
    for (int k = 0; k < 1 + iter % 4; ++k) {
      state = state * 1664525u + 1013904223u;
      b[(state >> 8) % b.size()] = static_cast<uint8_t>(state >> 24);
    }
    const std::string msg = parse_error(b);
    if (!msg.empty()) {
      EXPECT_TRUE(msg.starts_with("test.safetensors: ")) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

// ---- checkpoints: directories and shards ------------------------------------------------------

TEST(SafetensorsCheckpointTest, SingleFileDirectory) {
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open_dir(family_path("opt-tiny"));
  EXPECT_FALSE(c.sharded());
  EXPECT_EQ(c.shard_count(), 1u);
  ASSERT_EQ(c.tensors().size(), 36u);
  for (size_t i = 1; i < c.tensors().size(); ++i) EXPECT_LT(c.tensors()[i - 1]->name, c.tensors()[i]->name);
  EXPECT_EQ(c.require("model.decoder.layers.0.fc1.weight").shape, (std::vector<uint64_t>{128, 32}));
  EXPECT_EQ(c.find("lm_head.weight"), nullptr);
  const std::string msg = error_of([&] { (void)c.require("lm_head.weight"); });
  EXPECT_EQ(msg, family_path("opt-tiny/model.safetensors") + ": missing tensor \"lm_head.weight\"");
}

struct ShardedDir {
  std::string dir;
  Bytes shard1, shard2;
  nlohmann::json index;
  void write() const {
    write_bytes(dir + "/model-00001-of-00002.safetensors", shard1);
    write_bytes(dir + "/model-00002-of-00002.safetensors", shard2);
    std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  }
};

ShardedDir make_sharded(const std::string& name) {
  ShardedDir s;
  s.dir = temp_dir(name);
  s.shard1 = build({{"embed.weight", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})},
                    {"layers.0.w", "F16", {2}, Bytes{0x00, 0x3c, 0x00, 0xc0}},  // 1.0, -2.0
                    {"unlisted", "F32", {1}, f32_bytes({9})}});
  s.shard2 = build({{"layers.1.w", "BF16", {1, 2}, Bytes{0x80, 0x3f, 0x40, 0x40}},  // 1.0, 3.0
                    {"norm.weight", "F32", {2}, f32_bytes({0.5f, 0.25f})}});
  s.index = {{"metadata", {{"total_size", 38}}},
             {"weight_map",
              {{"embed.weight", "model-00001-of-00002.safetensors"},
               {"layers.0.w", "model-00001-of-00002.safetensors"},
               {"layers.1.w", "model-00002-of-00002.safetensors"},
               {"norm.weight", "model-00002-of-00002.safetensors"}}}};
  return s;
}

TEST(SafetensorsCheckpointTest, ShardedDirectory) {
  const ShardedDir s = make_sharded("sharded");
  s.write();
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open_dir(s.dir);
  EXPECT_TRUE(c.sharded());
  EXPECT_EQ(c.shard_count(), 2u);
  EXPECT_EQ(c.source_name(), (fs::path(s.dir) / "model.safetensors.index.json").string());
  std::vector<std::string> names;
  for (const auto* t : c.tensors()) names.push_back(t->name);
  EXPECT_EQ(names, (std::vector<std::string>{"embed.weight", "layers.0.w", "layers.1.w", "norm.weight"}));
  // In the shard's file but not in weight_map: not part of the model.
  EXPECT_EQ(c.find("unlisted"), nullptr);
  const auto& w0 = c.require("layers.0.w");
  EXPECT_EQ(w0.dtype, SafetensorsDtype::F16);
  EXPECT_EQ(f16_bits_to_float(u16_at(w0.data, 1)), -2.0f);
  EXPECT_TRUE(w0.file.ends_with("model-00001-of-00002.safetensors"));
  const auto& w1 = c.require("layers.1.w");
  EXPECT_EQ(w1.shape, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(bf16_bits_to_float(u16_at(w1.data, 1)), 3.0f);
  EXPECT_TRUE(w1.file.ends_with("model-00002-of-00002.safetensors"));
  float n[2];
  std::memcpy(n, c.require("norm.weight").data, 8);
  EXPECT_EQ(n[1], 0.25f);

  // A single model.safetensors beside the index wins, as in transformers.
  write_bytes(s.dir + "/model.safetensors", build({{"only", "F32", {1}, f32_bytes({7})}}));
  const SafetensorsCheckpoint single = SafetensorsCheckpoint::open_dir(s.dir);
  EXPECT_FALSE(single.sharded());
  EXPECT_NE(single.find("only"), nullptr);
}

TEST(SafetensorsCheckpointTest, HostileShards) {
  const std::string index_name = "/model.safetensors.index.json";
  {  // A shard file that is missing.
    const ShardedDir s = make_sharded("missing_shard");
    s.write();
    fs::remove(s.dir + "/model-00002-of-00002.safetensors");
    const std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(s.dir); });
    EXPECT_EQ(msg,
              s.dir + "/model-00002-of-00002.safetensors: no such file (a shard named by " + s.dir + index_name + ")");
  }
  {  // A tensor the index places in a shard that lacks it.
    ShardedDir s = make_sharded("absent_tensor");
    s.index["weight_map"]["ghost"] = "model-00002-of-00002.safetensors";
    s.write();
    const std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(s.dir); });
    EXPECT_EQ(msg, s.dir + "/model-00002-of-00002.safetensors: no tensor \"ghost\", which " + s.dir + index_name +
                       " places in this shard");
  }
  {  // A corrupt shard: its own error, naming the shard, and the index.
    ShardedDir s = make_sharded("bad_shard");
    s.shard2[9] = '[';
    s.write();
    const std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(s.dir); });
    EXPECT_TRUE(msg.starts_with(s.dir + "/model-00002-of-00002.safetensors: header")) << msg;
    EXPECT_TRUE(msg.ends_with("(a shard named by " + s.dir + index_name + ")")) << msg;
  }
  const auto index_error = [&](const std::string& name, const std::string& index_text) {
    const ShardedDir s = make_sharded(name);
    s.write();
    std::ofstream(s.dir + index_name) << index_text;
    std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(s.dir); });
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    return msg;
  };
  EXPECT_TRUE(index_error("i1", "{\"weight_map\": ").find("invalid JSON") != std::string::npos);
  EXPECT_TRUE(index_error("i2", "[]").ends_with("expected a JSON object, got array"));
  EXPECT_TRUE(index_error("i3", "{}").ends_with("weight_map is missing or not an object"));
  EXPECT_TRUE(index_error("i4", R"({"weight_map": []})").ends_with("weight_map is missing or not an object"));
  EXPECT_TRUE(index_error("i5", R"({"weight_map": {}})").ends_with("weight_map is empty"));
  EXPECT_TRUE(index_error("i6", R"({"weight_map": {"a": 3}})").ends_with("weight_map entry for \"a\" is not a string"));
  EXPECT_TRUE(index_error("i7", R"({"weight_map": {"a": "../model.safetensors"}})")
                  .ends_with("weight_map names shard \"../model.safetensors\" for \"a\", which is not a file name in "
                             "the directory"));
  EXPECT_TRUE(index_error("i8", R"({"weight_map": {"a": "/etc/passwd"}})").find("not a file name") !=
              std::string::npos);
  EXPECT_TRUE(index_error("i9", R"({"weight_map": {"a": ".."}})").find("not a file name") != std::string::npos);
  EXPECT_TRUE(index_error("i10", R"({"weight_map": {"a": ""}})").find("not a file name") != std::string::npos);
}

TEST(SafetensorsCheckpointTest, DirectoriesWithoutSafetensors) {
  const std::string empty = temp_dir("empty");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(empty); }),
            empty + ": no model.safetensors or model.safetensors.index.json");
  const std::string pickle = temp_dir("pickle");
  write_bytes(pickle + "/pytorch_model.bin", Bytes(16));
  EXPECT_TRUE(error_of([&] { SafetensorsCheckpoint::open_dir(pickle); }).find("only PyTorch pickle weights") !=
              std::string::npos);
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(empty + "/nope"); }), empty + "/nope: no such directory");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(family_path("opt-tiny/config.json")); }),
            family_path("opt-tiny/config.json") + ": not a directory");
  // model.safetensors that is a directory, or a dangling link (as in a broken HF cache).
  const std::string odd = temp_dir("odd");
  fs::create_directory(odd + "/model.safetensors");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(odd); }),
            odd + "/model.safetensors: is a directory, expected a model file");
  const std::string dangling = temp_dir("dangling");
  fs::create_symlink(dangling + "/blob-gone", dangling + "/model.safetensors");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(dangling); }),
            dangling + "/model.safetensors: no such file");
  // An empty model.safetensors.
  const std::string zero = temp_dir("zero");
  write_bytes(zero + "/model.safetensors", {});
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open_dir(zero); }),
            zero + "/model.safetensors: 0 bytes, too short for a safetensors file (8-byte header length)");
}

}  // namespace
}  // namespace h2o
