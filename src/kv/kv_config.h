// KV-cache settings as a user gives them (flags, request fields) and as resolved for one
// sequence. The contract is shared/spec/kv-policies.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace h2o {

// A slot count given either as a number of tokens or as a percentage of the sequence
// length ("64" or "20%").
struct BudgetSpec {
  double value = 0.0;
  bool percent = false;

  // Parses "N" (integer >= 1) or "P%" (0 < P <= 100). Throws h2o::Error naming `flag`.
  static BudgetSpec parse(const std::string& text, const std::string& flag);
  // Slots for a sequence of `seq_len` tokens (seq_len 0 = unknown: percentages then fail).
  int resolve(int seq_len, const std::string& flag) const;
  std::string to_string() const;
};

struct KvSettings {
  std::string policy = "full";
  std::optional<BudgetSpec> budget;  // required by every policy but full
  std::optional<BudgetSpec> recent;  // h2o/random; default half the budget
  int sinks = 4;                     // sink
  int prefill_chunk = 0;             // tokens per prefill step; 0 = the whole prompt
  uint64_t seed = 0;                 // random policy

  std::string describe() const;
};

// Settings resolved to slot counts for one sequence.
struct KvResolved {
  std::string policy = "full";
  int budget = 0;  // B; 0 = unbounded (full)
  int recent = 0;  // R
  int sinks = 0;   // S
  uint64_t seed = 0;
};

const std::vector<std::string>& kv_policy_names();

// Checks the policy name and parameters and turns percentages into counts for a sequence
// of `seq_len` tokens (0 if unknown). Throws h2o::Error with a clear message. With a
// percentage budget that resolves to B <= sinks, the sink count is capped at B - 1.
KvResolved resolve_kv(const KvSettings& s, int seq_len);

}  // namespace h2o
