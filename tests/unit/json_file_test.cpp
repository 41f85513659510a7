// JSON files of model directories: the capped reader (missing, non-regular, too large,
// malformed files) and typed field access with defaults and range checks, on the shared
// HF fixtures' config.json and generation_config.json and on hostile objects.
#include "common/json_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "common/error.h"
#include "test_errors.h"
#include "test_paths.h"

namespace h2o {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::error_of;

std::string temp_file(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "h2o_json_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

TEST(JsonFile, ReadsTheFixtureConfigs) {
  const std::string path = test::model_path("families/llama-tiny/config.json");
  const json j = read_json_file(path);
  const JsonFields cfg(j, "config.json");
  EXPECT_EQ(cfg.string("model_type", std::nullopt), "llama");
  EXPECT_EQ(cfg.integer("hidden_size", std::nullopt, 1, 1 << 20), 32);
  EXPECT_EQ(cfg.integer("num_key_value_heads", 4, 1, 1024), 2);
  EXPECT_EQ(cfg.integer("head_dim", std::nullopt, 1, 4096), 8);
  EXPECT_EQ(cfg.integer("sliding_window", 0, 0, 1 << 30), 0);  // absent: the default
  EXPECT_DOUBLE_EQ(cfg.number("rms_norm_eps", 1e-6, 0, 1), 1e-5);
  EXPECT_DOUBLE_EQ(cfg.number("rope_theta", 10000.0, 1, 1e12), 500000.0);
  EXPECT_TRUE(cfg.boolean("tie_word_embeddings", false));
  EXPECT_FALSE(cfg.boolean("attention_bias", true));
  const auto rope = cfg.object("rope_scaling");
  ASSERT_TRUE(rope.has_value());
  EXPECT_EQ(rope->string("rope_type", std::nullopt), "llama3");
  EXPECT_DOUBLE_EQ(rope->number("factor", std::nullopt, 1, 1024), 8.0);
  EXPECT_EQ(rope->integer("original_max_position_embeddings", std::nullopt, 1, 1 << 24), 256);
  EXPECT_EQ(cfg.integer_list("eos_token_id", 0, 1 << 30), std::vector<int64_t>{128001});

  // neox-tiny writes "rope_scaling": null, which counts as absent.
  const json neox = read_json_file(test::model_path("families/neox-tiny/config.json"));
  const JsonFields ncfg(neox, "config.json");
  EXPECT_FALSE(ncfg.has("rope_scaling"));
  EXPECT_FALSE(ncfg.object("rope_scaling").has_value());
  EXPECT_DOUBLE_EQ(ncfg.number("rotary_pct", 1.0, 0, 1), 0.25);
  EXPECT_TRUE(ncfg.boolean("use_parallel_residual", false));

  const json gen = read_json_file(test::model_path("families/opt-tiny/generation_config.json"));
  EXPECT_EQ(JsonFields(gen, "generation_config.json").integer_list("eos_token_id", 0, 1 << 30),
            std::vector<int64_t>{2});
}

TEST(JsonFile, FileErrors) {
  const std::string dir = ::testing::TempDir() + "h2o_json_dir";
  fs::create_directories(dir);
  EXPECT_EQ(error_of([&] { read_json_file(dir + "/missing.json"); }), dir + "/missing.json: no such file");
  EXPECT_EQ(error_of([&] { read_json_file(dir); }), dir + ": is a directory, expected a JSON file");
  EXPECT_EQ(error_of([&] { read_json_file("/dev/null"); }), "/dev/null: not a regular file, expected a JSON file");
  const std::string big = temp_file("big.json", "{\"a\": \"" + std::string(100, 'x') + "\"}");
  EXPECT_EQ(error_of([&] { read_json_file(big, 64); }),
            big + ": 109 bytes, more than the 64-byte limit for a JSON file");
  EXPECT_EQ(read_json_file(big, 109)["a"].get<std::string>().size(), 100u);
  const std::string bad = temp_file("bad.json", "{\"hidden_size\": 32,\n \"x\": }");
  const std::string msg = error_of([&] { read_json_file(bad); });
  EXPECT_TRUE(msg.starts_with(bad + ": invalid JSON: parse error at line 2, column 7")) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  const std::string empty = temp_file("empty.json", "");
  EXPECT_TRUE(error_of([&] { read_json_file(empty); }).starts_with(empty + ": invalid JSON"));
  // Control characters and invalid UTF-8 in the parser's "last read" stay out of the message.
  const std::string junk = temp_file("junk.json", std::string("{\"a\": \"\x01\xff\n\"}"));
  const std::string junk_msg = error_of([&] { read_json_file(junk); });
  for (const char c : junk_msg) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << junk_msg;
}

TEST(JsonFile, DuplicateKeys) {
  // Python's json module (and so transformers) keeps the last value; safetensors forbids them.
  EXPECT_EQ(parse_json_text(R"({"a": 1, "a": 2})", "c.json")["a"], 2);
  EXPECT_EQ(error_of([] { parse_json_text(R"({"a": 1, "a": 2})", "h", JsonDuplicateKeys::kReject); }),
            "h: duplicate key \"a\"");
  EXPECT_EQ(error_of([] { parse_json_text(R"({"o": {"b": [{"c": 1, "c": 1}]}})", "h", JsonDuplicateKeys::kReject); }),
            "h: duplicate key \"c\"");
  EXPECT_NO_THROW(
      parse_json_text(R"({"a": {"x": 1}, "b": {"x": 2}, "x": [{"x": 3}]})", "h", JsonDuplicateKeys::kReject));
}

TEST(JsonFields, RangeAndTypeMessages) {
  const json j = json::parse(R"({
    "hidden_size": -3, "layers": 2.0, "heads": "4", "big": 18446744073709551615, "neg_big": -9223372036854775808,
    "eps": -1e-5, "huge": 1e308, "flag": 1, "name": 7, "list": [1, "2"], "list_ok": [3, 4], "obj": [1],
    "nested": {"factor": 0, "deeper": {"x": true}}, "null_field": null, "arr": [[1]], "long": ")" +
                             std::string(300, 'y') + R"("})");
  const JsonFields f(j, "config.json");
  EXPECT_EQ(error_of([&] { f.integer("hidden_size", std::nullopt, 1, 1048576); }),
            "config.json: hidden_size = -3 is out of range 1..1048576");
  EXPECT_EQ(error_of([&] { f.integer("layers", std::nullopt, 1, 1000); }),
            "config.json: layers = 2.0 is not an integer");
  EXPECT_EQ(error_of([&] { f.integer("heads", std::nullopt, 1, 1000); }),
            "config.json: heads = \"4\" is not an integer");
  EXPECT_EQ(error_of([&] { f.integer("big", std::nullopt, 0, INT64_MAX); }),
            "config.json: big = 18446744073709551615 is out of range 0..9223372036854775807");
  EXPECT_EQ(f.integer("neg_big", std::nullopt, INT64_MIN, 0), INT64_MIN);
  EXPECT_EQ(error_of([&] { f.integer("big", std::nullopt, -5, -1); }),
            "config.json: big = 18446744073709551615 is out of range -5..-1");
  EXPECT_EQ(error_of([&] { f.integer("absent", std::nullopt, 1, 2); }), "config.json: missing absent");
  EXPECT_EQ(error_of([&] { f.integer("null_field", std::nullopt, 1, 2); }), "config.json: missing null_field");
  EXPECT_EQ(f.integer("null_field", 5, 1, 9), 5);
  EXPECT_EQ(error_of([&] { f.number("eps", std::nullopt, 0, 1); }), "config.json: eps = -1e-05 is out of range 0..1");
  EXPECT_EQ(error_of([&] { f.number("huge", std::nullopt, 0, 1e9); }),
            "config.json: huge = 1e+308 is out of range 0..1000000000");
  EXPECT_EQ(error_of([&] { f.number("heads", std::nullopt, 0, 1); }), "config.json: heads = \"4\" is not a number");
  EXPECT_DOUBLE_EQ(f.number("hidden_size", std::nullopt, -10, 0), -3.0);  // integers are numbers
  EXPECT_EQ(error_of([&] { f.boolean("flag", std::nullopt); }), "config.json: flag = 1 is not true or false");
  EXPECT_EQ(error_of([&] { f.string("name", std::nullopt); }), "config.json: name = 7 is not a string");
  EXPECT_EQ(f.string("absent", "dflt"), "dflt");
  EXPECT_EQ(error_of([&] { f.integer_list("list", 0, 10); }), "config.json: list[1] = \"2\" is not an integer");
  EXPECT_EQ(error_of([&] { f.integer_list("list_ok", 0, 3); }), "config.json: list_ok[1] = 4 is out of range 0..3");
  EXPECT_EQ(f.integer_list("list_ok", 0, 10), (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(f.integer_list("absent", 0, 10).empty());
  EXPECT_EQ(error_of([&] { f.integer_list("heads", 0, 10); }), "config.json: heads = \"4\" is not an integer");
  EXPECT_EQ(error_of([&] { f.object("obj"); }), "config.json: obj = [...] is not an object");
  EXPECT_EQ(error_of([&] { f.integer("arr", std::nullopt, 0, 1); }), "config.json: arr = [...] is not an integer");
  EXPECT_EQ(error_of([&] { f.integer("nested", std::nullopt, 0, 1); }),
            "config.json: nested = {...} is not an integer");
  const std::string long_msg = error_of([&] { f.integer("long", std::nullopt, 0, 1); });
  EXPECT_EQ(long_msg, "config.json: long = \"" + std::string(120, 'y') + "\"... is not an integer");
  // Nested objects name their path.
  const auto nested = f.object("nested");
  ASSERT_TRUE(nested.has_value());
  EXPECT_EQ(error_of([&] { nested->number("factor", std::nullopt, 1, 64); }),
            "config.json: nested.factor = 0 is out of range 1..64");
  EXPECT_EQ(error_of([&] { nested->integer("gone", std::nullopt, 1, 64); }), "config.json: missing nested.gone");
  EXPECT_EQ(error_of([&] { nested->object("deeper")->integer("x", std::nullopt, 0, 1); }),
            "config.json: nested.deeper.x = true is not an integer");
  EXPECT_EQ(error_of([] { JsonFields(json::array(), "config.json"); }),
            "config.json: expected a JSON object, got array");
}

}  // namespace
}  // namespace h2o
