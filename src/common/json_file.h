// JSON files of a model directory (config.json, generation_config.json, the shard index):
// a size-capped read with one-line errors, and typed field access with defaults and range
// checks whose messages name the file and the field ("config.json: hidden_size = -3 is out
// of range 1..1048576").
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace h2o {

constexpr size_t kMaxJsonFileBytes = 64u << 20;

enum class JsonDuplicateKeys { kLastWins, kReject };

// `s` as a quoted JSON string for a one-line message: control characters escaped, invalid
// UTF-8 replaced, cut to about max_bytes (then "..." follows the closing quote).
std::string quote_for_message(std::string_view s, size_t max_bytes = 120);

// Parses `text` (leading/trailing whitespace allowed). Throws h2o::Error
// "<where>: invalid JSON: <parser message>", or "<where>: duplicate key <k>" with kReject
// (at any depth). kLastWins is what Python's json module (and so transformers) does.
nlohmann::json parse_json_text(std::string_view text, std::string_view where,
                               JsonDuplicateKeys duplicates = JsonDuplicateKeys::kLastWins);

// Reads and parses a JSON file. Throws h2o::Error "<path>: ..." for a missing or
// non-regular file, one larger than max_bytes, a read error, or malformed JSON.
nlohmann::json read_json_file(const std::string& path, size_t max_bytes = kMaxJsonFileBytes);

// Typed, range-checked fields of a JSON object. A key whose value is null counts as absent
// (transformers writes `"rope_scaling": null`). `def` nullopt means the field is required.
class JsonFields {
 public:
  // Throws "<where>: expected a JSON object, got <type>" unless `obj` is an object. `obj`
  // must outlive this view.
  JsonFields(const nlohmann::json& obj, std::string where);

  bool has(std::string_view key) const;
  const std::string& where() const { return where_; }  // the file, for messages
  // A JSON integer (2.0 is not one) within [min, max].
  int64_t integer(std::string_view key, std::optional<int64_t> def, int64_t min, int64_t max) const;
  // Any finite JSON number within [min, max].
  double number(std::string_view key, std::optional<double> def, double min, double max) const;
  bool boolean(std::string_view key, std::optional<bool> def) const;
  std::string string(std::string_view key, std::optional<std::string> def) const;
  // An integer or a list of integers, each within [min, max] (eos_token_id); empty if absent.
  std::vector<int64_t> integer_list(std::string_view key, int64_t min, int64_t max) const;
  // A nested object (rope_scaling): nullopt if absent or null, else its fields, whose
  // messages name it as "<key>.<field>". Anything but an object is an error.
  std::optional<JsonFields> object(std::string_view key) const;

 private:
  JsonFields(const nlohmann::json& obj, std::string where, std::string prefix);
  const nlohmann::json* find(std::string_view key) const;  // null if absent or null
  // `v` (named `name` after the prefix in messages) as an integer within [min, max].
  int64_t as_integer(const nlohmann::json& v, std::string_view name, int64_t min, int64_t max) const;
  [[noreturn]] void bad(std::string_view key, const nlohmann::json& v, std::string_view problem) const;

  const nlohmann::json* obj_;
  std::string where_;   // the file, for messages
  std::string prefix_;  // "rope_scaling." for nested objects
};

}  // namespace h2o
