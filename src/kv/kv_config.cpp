#include "kv/kv_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "common/check.h"

namespace h2o {

BudgetSpec BudgetSpec::parse(const std::string& text, const std::string& flag) {
  BudgetSpec b;
  std::string num = text;
  if (!num.empty() && num.back() == '%') {
    b.percent = true;
    num.pop_back();
  }
  if (num.empty()) fail("{}: expected a token count or a percentage, got '{}'", flag, text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || errno != 0 || !std::isfinite(v))
    fail("{}: '{}' is not a number", flag, text);
  if (b.percent) {
    if (!(v > 0.0) || v > 100.0) fail("{}: percentage must be in (0, 100], got {}", flag, text);
  } else {
    if (v != std::floor(v)) fail("{}: token count must be a whole number, got {}", flag, text);
    if (v < 1.0) fail("{}: must be at least 1, got {}", flag, text);
    if (v > 1e9) fail("{}: {} is too large", flag, text);
  }
  b.value = v;
  return b;
}

int BudgetSpec::resolve(int seq_len, const std::string& flag) const {
  if (!percent) return static_cast<int>(value);
  if (seq_len <= 0) fail("{}: a percentage needs a sequence length known up front; give a token count", flag);
  // Rounded to the nearest slot, at least one.
  return std::max(1, static_cast<int>(std::lround(value / 100.0 * seq_len)));
}

std::string BudgetSpec::to_string() const {
  return percent ? fmt::format("{}%", value) : fmt::format("{}", static_cast<long long>(value));
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32:
      return "f32";
    case KvType::F16:
      return "f16";
    case KvType::Q8:
      return "q8";
  }
  return "?";
}

const char* kv_positions_name(KvPositions p) { return p == KvPositions::Cache ? "cache" : "absolute"; }

KvType parse_kv_type(const std::string& text, const std::string& flag) {
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8}) {
    if (text == kv_type_name(t)) return t;
  }
  fail("{}: unknown KV storage type '{}' (choose from f32, f16, q8)", flag, text);
}

KvPositions parse_kv_positions(const std::string& text, const std::string& flag) {
  for (KvPositions p : {KvPositions::Absolute, KvPositions::Cache}) {
    if (text == kv_positions_name(p)) return p;
  }
  fail("{}: unknown position mode '{}' (choose from absolute, cache)", flag, text);
}

std::string KvSettings::describe() const {
  std::string s = policy;
  if (budget) s += " budget " + budget->to_string();
  if (policy == "h2o" || policy == "random") s += " recent " + (recent ? recent->to_string() : "budget/2");
  if (policy == "sink") s += fmt::format(" sinks {}", sinks);
  // The defaults (f32, absolute) are left out: every description before these modes stays the same.
  if (type != KvType::F32) s += fmt::format(" {}", kv_type_name(type));
  if (positions != KvPositions::Absolute) s += " cache-positions";
  return s;
}

const std::vector<std::string>& kv_policy_names() {
  static const std::vector<std::string> names{"full", "window", "sink", "h2o", "tova", "random"};
  return names;
}

KvResolved resolve_kv(const KvSettings& s, int seq_len) {
  const auto& names = kv_policy_names();
  if (std::find(names.begin(), names.end(), s.policy) == names.end())
    fail("--kv-policy: unknown policy '{}' (choose from full, window, sink, h2o, tova, random)", s.policy);
  if (s.prefill_chunk < 0) fail("--prefill-chunk: must be at least 1, got {}", s.prefill_chunk);
  KvResolved r;
  r.policy = s.policy;
  r.seed = s.seed;
  r.type = s.type;
  r.positions = s.positions;
  if (s.policy == "full") {
    if (s.recent) fail("--kv-recent: not used by policy full");
    return r;
  }
  if (!s.budget) fail("--kv-budget: policy {} needs a budget", s.policy);
  r.budget = s.budget->resolve(seq_len, "--kv-budget");
  if (s.policy == "h2o" || s.policy == "random") {
    r.recent = s.recent ? s.recent->resolve(seq_len, "--kv-recent") : r.budget / 2;
    if (r.recent > r.budget)
      fail("--kv-recent: {} recent slots exceed the budget of {}", r.recent, r.budget);
  } else if (s.recent) {
    fail("--kv-recent: not used by policy {}", s.policy);
  }
  if (s.policy == "sink") {
    if (s.sinks < 0) fail("--kv-sinks: must be at least 0, got {}", s.sinks);
    r.sinks = s.sinks;
    if (s.sinks >= r.budget) {
      // A percentage of a short sequence (an eval item, a text's last window) can resolve
      // below the sink count: keep one slot for the window then. A count is a user error.
      if (!s.budget->percent)
        fail("--kv-sinks: {} sink slots leave no room in a budget of {}", s.sinks, r.budget);
      r.sinks = r.budget - 1;
    }
  }
  return r;
}

void check_kv_positions(const KvResolved& kv, bool rotary, const std::string& arch) {
  if (kv.positions == KvPositions::Cache && !rotary)
    fail("--kv-positions cache: not applicable to architecture '{}' (no rotary position embeddings to re-index)", arch);
}

}  // namespace h2o
