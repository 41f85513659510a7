#include "common/json_file.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/check.h"

namespace h2o {
namespace {

using nlohmann::json;

constexpr size_t kMaxParserMessage = 240;

// nlohmann's message without its "[json.exception.parse_error.101] " tag, kept to one line
// of ASCII: the "last read" part quotes input bytes, which may be invalid UTF-8 (control
// characters are already shown as <U+XXXX>).
std::string parser_message(const char* what) {
  std::string_view m(what);
  if (const size_t tag_end = m.find("] "); m.starts_with("[json.exception.") && tag_end != m.npos) {
    m.remove_prefix(tag_end + 2);
  }
  std::string out(m.substr(0, kMaxParserMessage));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) >= 0x80 || static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  if (m.size() > kMaxParserMessage) out += "...";
  return out;
}

// What a value looks like in a message: scalars as JSON, containers abbreviated (dumping
// them could be long, and is recursive on deep nesting).
std::string value_for_message(const json& v) {
  if (v.is_array()) return "[...]";
  if (v.is_object()) return "{...}";
  if (v.is_string()) return quote_for_message(v.get_ref<const std::string&>());
  return v.dump();
}

}  // namespace

std::string quote_for_message(std::string_view s, size_t max_bytes) {
  const bool cut = s.size() > max_bytes;
  const json j = std::string(cut ? s.substr(0, max_bytes) : s);
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + (cut ? "..." : "");
}

json parse_json_text(std::string_view text, std::string_view where, JsonDuplicateKeys duplicates) {
  // The keys seen so far in each object being parsed, innermost last.
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  const json::parser_callback_t track = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!duplicate && !open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), duplicates == JsonDuplicateKeys::kReject ? track : nullptr);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", where, parser_message(e.what()));
  }
  if (duplicate) fail("{}: duplicate key {}", where, quote_for_message(*duplicate));
  return j;
}

json read_json_file(const std::string& path, size_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) fail("{}: no such file", path);
  if (ec) fail("{}: cannot read: {}", path, ec.message());
  if (st.type() == fs::file_type::directory) fail("{}: is a directory, expected a JSON file", path);
  if (st.type() != fs::file_type::regular) fail("{}: not a regular file, expected a JSON file", path);
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail("{}: cannot read: {}", path, ec.message());
  if (size > max_bytes) fail("{}: {} bytes, more than the {}-byte limit for a JSON file", path, size, max_bytes);

  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  // Read at most one byte past the limit, in case the file grew since it was measured.
  std::string text(max_bytes + 1 > size ? static_cast<size_t>(size) + 1 : max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) fail("{}: read error", path);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes) fail("{}: more than the {}-byte limit for a JSON file", path, max_bytes);
  return parse_json_text(text, path);
}

JsonFields::JsonFields(const json& obj, std::string where) : JsonFields(obj, std::move(where), "") {}

JsonFields::JsonFields(const json& obj, std::string where, std::string prefix)
    : obj_(&obj), where_(std::move(where)), prefix_(std::move(prefix)) {
  if (!obj.is_object()) {
    if (prefix_.empty()) fail("{}: expected a JSON object, got {}", where_, obj.type_name());
    fail("{}: {} is {}, expected an object", where_, prefix_.substr(0, prefix_.size() - 1), obj.type_name());
  }
}

const json* JsonFields::find(std::string_view key) const {
  const auto it = obj_->find(std::string(key));
  if (it == obj_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::has(std::string_view key) const { return find(key) != nullptr; }

void JsonFields::bad(std::string_view key, const json& v, std::string_view problem) const {
  fail("{}: {}{} = {} {}", where_, prefix_, key, value_for_message(v), problem);
}

int64_t JsonFields::integer(std::string_view key, std::optional<int64_t> def, int64_t min, int64_t max) const {
  const json* v = find(key);
  if (v == nullptr) {
    if (!def) fail("{}: missing {}{}", where_, prefix_, key);
    return *def;
  }
  return as_integer(*v, key, min, max);
}

int64_t JsonFields::as_integer(const json& v, std::string_view name, int64_t min, int64_t max) const {
  if (!v.is_number_integer()) bad(name, v, "is not an integer");
  const bool too_big = v.is_number_unsigned() && (max < 0 || v.get<uint64_t>() > static_cast<uint64_t>(max));
  if (too_big || v.get<int64_t>() < min || v.get<int64_t>() > max) {
    bad(name, v, fmt::format("is out of range {}..{}", min, max));
  }
  return v.get<int64_t>();
}

double JsonFields::number(std::string_view key, std::optional<double> def, double min, double max) const {
  const json* v = find(key);
  if (v == nullptr) {
    if (!def) fail("{}: missing {}{}", where_, prefix_, key);
    return *def;
  }
  if (!v->is_number()) bad(key, *v, "is not a number");
  const auto d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max) bad(key, *v, fmt::format("is out of range {}..{}", min, max));
  return d;
}

bool JsonFields::boolean(std::string_view key, std::optional<bool> def) const {
  const json* v = find(key);
  if (v == nullptr) {
    if (!def) fail("{}: missing {}{}", where_, prefix_, key);
    return *def;
  }
  if (!v->is_boolean()) bad(key, *v, "is not true or false");
  return v->get<bool>();
}

std::string JsonFields::string(std::string_view key, std::optional<std::string> def) const {
  const json* v = find(key);
  if (v == nullptr) {
    if (!def) fail("{}: missing {}{}", where_, prefix_, key);
    return *std::move(def);
  }
  if (!v->is_string()) bad(key, *v, "is not a string");
  return v->get<std::string>();
}

std::vector<int64_t> JsonFields::integer_list(std::string_view key, int64_t min, int64_t max) const {
  const json* v = find(key);
  if (v == nullptr) return {};
  if (!v->is_array()) return {integer(key, std::nullopt, min, max)};
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) out.push_back(as_integer((*v)[i], fmt::format("{}[{}]", key, i), min, max));
  return out;
}

std::optional<JsonFields> JsonFields::object(std::string_view key) const {
  const json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) bad(key, *v, "is not an object");
  return JsonFields(*v, where_, fmt::format("{}{}.", prefix_, key));
}

}  // namespace h2o
