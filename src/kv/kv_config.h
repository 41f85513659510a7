// KV-cache settings as a user gives them (flags, request fields) and as resolved for one
// sequence. The contract is shared/spec/kv-policies.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace h2o {

// How a slot stores its key and value vectors (shared/spec/kv-policies.md, "Storage
// types"): as computed, IEEE half, or int8 with one fp16 scale per vector.
enum class KvType : uint8_t { F32, F16, Q8 };
// Which position a key and a query are rotated by (spec, "Positions"): the token's
// absolute position (keys cached after RoPE), or its rank inside the (layer, KV head)'s
// kept set (keys cached before RoPE, rotated at every step).
enum class KvPositions : uint8_t { Absolute, Cache };

const char* kv_type_name(KvType t);
const char* kv_positions_name(KvPositions p);
// "f32" | "f16" | "q8" and "absolute" | "cache"; anything else throws h2o::Error naming `flag`.
KvType parse_kv_type(const std::string& text, const std::string& flag = "--kv-type");
KvPositions parse_kv_positions(const std::string& text, const std::string& flag = "--kv-positions");

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
  KvType type = KvType::F32;
  KvPositions positions = KvPositions::Absolute;

  std::string describe() const;
};

// Settings resolved to slot counts for one sequence.
struct KvResolved {
  std::string policy = "full";
  int budget = 0;  // B; 0 = unbounded (full)
  int recent = 0;  // R
  int sinks = 0;   // S
  uint64_t seed = 0;
  KvType type = KvType::F32;
  KvPositions positions = KvPositions::Absolute;
};

const std::vector<std::string>& kv_policy_names();

// Checks the policy name and parameters and turns percentages into counts for a sequence
// of `seq_len` tokens (0 if unknown). Throws h2o::Error with a clear message. With a
// percentage budget that resolves to B <= sinks, the sink count is capped at B - 1.
KvResolved resolve_kv(const KvSettings& s, int seq_len);

// A bounded cache under `cache` positions never rotates past B + T, so generation may go on
// past the model's trained context; everything else stops there.
inline bool streams_past_context(const KvResolved& kv) { return kv.budget > 0 && kv.positions == KvPositions::Cache; }

// `cache` positions re-index rotary embeddings; a model without them (learned absolute
// position embeddings, e.g. OPT) cannot use the mode. Throws h2o::Error naming the flag
// and the architecture if `kv` asks for it and the model has no rotary keys.
void check_kv_positions(const KvResolved& kv, bool rotary, const std::string& arch);

}  // namespace h2o
