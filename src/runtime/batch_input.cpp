#include "runtime/batch_input.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <optional>

#include "common/check.h"

namespace h2o {
namespace {

using nlohmann::json;

const json* field(const json& j, const char* name) {
  const auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// An integer field within [lo, hi]; a float, a string or an out-of-range number is an error.
int64_t int_field(const json& j, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  if (v->is_number_unsigned()) {
    const auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) fail("field '{}' must be at most {}, got {}", name, hi, u);
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) fail("field '{}' must be an integer, got {}", name, v->type_name());
  const auto i = v->get<int64_t>();
  if (i < lo || i > hi) fail("field '{}' must be in [{}, {}], got {}", name, lo, hi, i);
  return i;
}

uint64_t seed_field(const json& j, const char* name, uint64_t fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  if (!v->is_number_unsigned()) fail("field '{}' must be an integer in [0, 2^64), got {}", name, v->dump());
  return v->get<uint64_t>();
}

float float_field(const json& j, const char* name, float fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  if (!v->is_number()) fail("field '{}' must be a number, got {}", name, v->type_name());
  const auto d = v->get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    fail("field '{}' must be a finite number, got {}", name, v->dump());
  return static_cast<float>(d);
}

bool bool_field(const json& j, const char* name, bool fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail("field '{}' must be true or false, got {}", name, v->type_name());
  return v->get<bool>();
}

// The field's string, or nothing when absent; any other JSON type is the line's error.
std::optional<std::string> string_field(const json& j, const char* name) {
  const json* v = field(j, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) fail("field '{}' must be a string, got {}", name, v->type_name());
  return v->get<std::string>();
}

std::optional<BudgetSpec> budget_field(const json& j, const char* name, std::optional<BudgetSpec> fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  if (v->is_number_integer()) return BudgetSpec::parse(v->dump(), name);
  if (v->is_string()) return BudgetSpec::parse(v->get<std::string>(), name);
  fail("field '{}' must be an integer or a string like \"20%\"", name);
}

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

}  // namespace

PromptSpec parse_prompt_line(std::string_view line, const PromptSpec& defaults) {
  PromptSpec p = defaults;
  try {
    // The depth limit keeps a line of a million brackets from costing a deep recursion.
    const json::parser_callback_t depth_guard = [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxPromptLineDepth) fail("JSON nested more than {} deep", kMaxPromptLineDepth);
      return true;
    };
    const json j = json::parse(line, depth_guard);
    if (!j.is_object()) fail("expected a JSON object");
    const json* prompt = field(j, "prompt");
    if (prompt == nullptr || !prompt->is_string()) fail("missing string field 'prompt'");
    p.prompt = prompt->get<std::string>();
    if (const json* id = field(j, "id")) p.id = *id;
    const int64_t n = int_field(j, "n_predict", p.n_predict, 0, kIntMax);
    p.n_predict = static_cast<int>(int_field(j, "max_tokens", n, 0, kIntMax));
    p.ignore_eos = bool_field(j, "ignore_eos", p.ignore_eos);
    p.sampling.temperature = float_field(j, "temperature", float_field(j, "temp", p.sampling.temperature));
    p.sampling.top_k = static_cast<int>(int_field(j, "top_k", p.sampling.top_k, 0, kIntMax));
    p.sampling.top_p = float_field(j, "top_p", p.sampling.top_p);
    p.sampling.seed = seed_field(j, "seed", p.sampling.seed);
    if (const std::optional<std::string> policy = string_field(j, "kv_policy")) {
      // As the server merges a request's KV fields: another policy keeps the budget (not
      // for full) but not the recent split.
      if (*policy != p.kv.policy) {
        p.kv.policy = *policy;
        if (p.kv.policy == "full") p.kv.budget.reset();
        p.kv.recent.reset();
      }
    }
    if (field(j, "kv_budget") != nullptr && p.kv.policy == "full")
      fail("kv_budget: not used by policy full (set kv_policy too)");
    p.kv.budget = budget_field(j, "kv_budget", p.kv.budget);
    p.kv.recent = budget_field(j, "kv_recent", p.kv.recent);
    p.kv.sinks = static_cast<int>(int_field(j, "kv_sinks", p.kv.sinks, 0, kIntMax));
    p.kv.prefill_chunk = static_cast<int>(int_field(j, "prefill_chunk", p.kv.prefill_chunk, 0, kIntMax));
    if (const auto type = string_field(j, "kv_type")) p.kv.type = parse_kv_type(*type, "kv_type");
    if (const auto positions = string_field(j, "kv_positions"))
      p.kv.positions = parse_kv_positions(*positions, "kv_positions");
  } catch (const json::exception& e) {
    p.error = fmt::format("invalid JSON: {}", e.what());
  } catch (const Error& e) {
    p.error = e.what();
  }
  return p;
}

std::vector<PromptSpec> parse_prompt_file(std::string_view text, bool jsonl, const PromptSpec& defaults) {
  std::vector<PromptSpec> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (jsonl) {
      out.push_back(parse_prompt_line(line, defaults));
    } else {
      PromptSpec p = defaults;
      p.prompt = std::string(line);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace h2o
