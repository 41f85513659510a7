// The interface every naive reference architecture implements, and the arithmetic they
// share (reference/naive_llama.h, naive_neox.h, ...): double precision, plain loops,
// written from the specifications (shared/spec/kv-policies.md, shared/docs/
// model-families.md), sharing nothing with the engine.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

namespace h2o::ref {

using Vec = std::vector<double>;

struct NaiveConfig {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int seq_len = 0;
  bool shared_classifier = true;  // llama2.c: header vocab > 0 means the classifier is the embedding
  int head_dim = 0;               // 0: dim / n_heads

  int head_size() const { return head_dim > 0 ? head_dim : dim / n_heads; }
  int q_dim() const { return n_heads * head_size(); }
  int kv_dim() const { return n_kv_heads * head_size(); }
  int group() const { return n_heads / n_kv_heads; }
};

// RoPE as a model defines it: pair i of n_rot rotated dims turns by the fp32 angle
// pos * (1 / base^(2i/n_rot) / factor_i) (model-families.md §0; llama2.c and Hugging
// Face both build the angle in float32); cos, sin and the rotation in double.
struct NaiveRope {
  bool neox = false;  // pairs (i, i + n_rot/2) instead of (2i, 2i+1)
  int n_rot = 0;      // 0: no rotary embedding
  float base = 10000.0f;
  float freq_scale = 1.0f;
  std::vector<float> factors;  // per-pair divisors (Llama 3.1+), empty = 1

  double angle(int pos, int pair) const;
  // Rotates every head_size-wide head of x at `pos`.
  void apply(Vec& x, int pos, int head_size) const;
};

// K and V of every token processed so far, per layer, indexed by absolute position.
// Nothing is ever removed: which tokens a query may see is decided by a mask.
struct NaiveKvStore {
  std::vector<std::vector<Vec>> k, v;  // [layer][pos][kv_dim]
};

// Attention statistics of one step for one (layer, KV head), by position.
struct NaiveStepStats {
  std::map<int, double> mass;      // summed over the group's query heads and all rows
  std::map<int, double> last_row;  // summed over the group's query heads, last row only
};

// visible(layer, kv_head, query_pos, key_pos): may this query see this key?
// (Only keys already in the store, i.e. pos < first_pos + T, are asked about.)
using Visibility = std::function<bool(int layer, int kv_head, int qpos, int kpos)>;

// The two places a KV setting reaches the model arithmetic (shared/spec/kv-policies.md,
// "Positions" and "Storage types"); an empty member keeps the paper's behaviour.
struct NaiveKvHooks {
  // The position the key or query of token `pos` is rotated by in (layer, kv_head). Empty:
  // its absolute position, keys stored after RoPE. Set: keys are stored before RoPE and
  // both are rotated at attention time by this position (the rank under `cache`).
  std::function<int(int layer, int kv_head, int pos)> rotation_position;
  // Rounds one KV head's key or value vector (n values, in place) to the storage type, as
  // it is stored (the key after RoPE, or before it when rotation_position is set).
  std::function<void(double* x, int n)> store;
};

class NaiveModel {
 public:
  virtual ~NaiveModel() = default;
  virtual const NaiveConfig& config() const = 0;

  // One forward pass over `tokens` at positions first_pos.. : appends their K/V to
  // `store`, lets each query see the stored keys that `visible` allows, and returns the
  // logits of every row ([T][vocab]). If `stats` is given it receives one entry per
  // (layer, KV head), index layer * n_kv_heads + kv_head. `hooks` change positions and
  // storage as a KV setting asks (null: absolute positions, exact storage).
  virtual std::vector<Vec> step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                                const Visibility& visible, std::vector<NaiveStepStats>* stats = nullptr,
                                const NaiveKvHooks* hooks = nullptr) const = 0;

  // All tokens at positions 0.. in one pass under a static mask (causal is up to the
  // predicate). Logits [n][vocab].
  std::vector<Vec> logits_with_mask(std::span<const int32_t> tokens, const Visibility& visible) const;
  // Plain causal attention over everything.
  std::vector<Vec> logits_causal(std::span<const int32_t> tokens) const;
};

// --- arithmetic shared by the naive architectures ---

// out = W x (+ b) with W row-major [rows][cols]; b may be empty.
Vec matvec(const Vec& w, const Vec& x, int rows, int cols, const Vec& b = {});
Vec rmsnorm(const Vec& x, const Vec& weight, double eps);
Vec layernorm(const Vec& x, const Vec& weight, const Vec& bias, double eps);
double silu(double x);
double gelu_erf(double x);

// A new token's q, k and v before they are stored (one row, all heads): RoPE at `pos`
// unless the hooks rotate late, then the storage type's rounding of k and v per head.
void position_and_store(const NaiveRope& rope, const NaiveKvHooks* hooks, int head_size, int pos, Vec& q, Vec& k,
                        Vec& v);

// The attention of one query row (all query heads; position qpos, row `row` of a step of
// n_rows) over the layer's stored keys that `visible` allows, by the spec:
// softmax(q.k / sqrt(head_size)) over the visible keys, output [q_dim]. q and the keys
// are already rotated, unless the hooks rotate late (then both are rotated here by
// their positions in each KV head). Adds the probabilities to `stats` (at fp32
// precision, the spec's softmax type) if given.
Vec attend(const NaiveConfig& cfg, int layer, const std::vector<Vec>& keys, const std::vector<Vec>& values,
           const Vec& q, int qpos, int row, int n_rows, const Visibility& visible,
           std::vector<NaiveStepStats>* stats, const NaiveRope& rope, const NaiveKvHooks* hooks);

// The spec's storage types, written independently of the engine: an fp32 value rounded to
// IEEE half (nearest even) as a double, and a vector stored as q8 and dequantised.
double round_to_half(float x);
void store_as_q8(double* x, int n);

}  // namespace h2o::ref
