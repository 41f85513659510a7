#include "reference/naive_llama.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "kv/random_key.h"  // part of the random policy's contract
#include "reference/naive_gguf.h"

namespace h2o::ref {
namespace {

// Reads fp32 values one after another from the checkpoint, widening to double.
class FloatReader {
 public:
  FloatReader(std::vector<char> bytes, size_t offset) : bytes_(std::move(bytes)), off_(offset) {}

  Vec take(size_t count) {
    if (off_ + count * 4 > bytes_.size()) throw std::runtime_error("naive reader: checkpoint is truncated");
    Vec out(count);
    for (size_t i = 0; i < count; ++i) {
      float f;
      std::copy_n(&bytes_[off_ + i * 4], 4, reinterpret_cast<char*>(&f));
      out[i] = static_cast<double>(f);
    }
    off_ += count * 4;
    return out;
  }
  void skip(size_t count) {
    if (off_ + count * 4 > bytes_.size()) throw std::runtime_error("naive reader: checkpoint is truncated");
    off_ += count * 4;
  }
  size_t remaining() const { return bytes_.size() - off_; }

 private:
  std::vector<char> bytes_;
  size_t off_;
};

}  // namespace

NaiveLlama::NaiveLlama(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("naive reader: cannot open " + path);
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::string(magic, 4) == "GGUF") {
    read_gguf(path);
  } else {
    read_llama2c(path);
  }
}

void NaiveLlama::read_llama2c(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 7 * 4) throw std::runtime_error("naive reader: no header in " + path);
  int32_t h[7];
  std::copy_n(bytes.data(), 7 * 4, reinterpret_cast<char*>(h));
  cfg_.dim = h[0];
  cfg_.hidden_dim = h[1];
  cfg_.n_layers = h[2];
  cfg_.n_heads = h[3];
  cfg_.n_kv_heads = h[4];
  cfg_.shared_classifier = h[5] > 0;
  cfg_.vocab_size = std::abs(h[5]);
  cfg_.seq_len = h[6];
  if (cfg_.dim <= 0 || cfg_.n_heads <= 0 || cfg_.n_kv_heads <= 0 || cfg_.dim % cfg_.n_heads != 0 ||
      cfg_.n_heads % cfg_.n_kv_heads != 0 || cfg_.n_layers <= 0 || cfg_.vocab_size <= 0)
    throw std::runtime_error("naive reader: implausible header in " + path);
  rope_.n_rot = cfg_.head_size();  // interleaved pairs, base 10000: run.c's RoPE

  const size_t d = static_cast<size_t>(cfg_.dim), hd = static_cast<size_t>(cfg_.hidden_dim);
  const size_t kvd = static_cast<size_t>(cfg_.kv_dim()), L = static_cast<size_t>(cfg_.n_layers);
  const size_t V = static_cast<size_t>(cfg_.vocab_size);
  FloatReader r(std::move(bytes), 7 * 4);
  token_embedding_ = r.take(V * d);
  // The file stores each kind of tensor for all layers together; split them per layer.
  auto per_layer = [&](size_t each) {
    Vec all = r.take(L * each);
    std::vector<Vec> out(L);
    for (size_t l = 0; l < L; ++l) out[l].assign(all.begin() + static_cast<std::ptrdiff_t>(l * each),
                                                 all.begin() + static_cast<std::ptrdiff_t>((l + 1) * each));
    return out;
  };
  auto rms_att = per_layer(d);
  auto wq = per_layer(d * d);
  auto wk = per_layer(kvd * d);
  auto wv = per_layer(kvd * d);
  auto wo = per_layer(d * d);
  auto rms_ffn = per_layer(d);
  auto w1 = per_layer(hd * d);
  auto w2 = per_layer(d * hd);
  auto w3 = per_layer(hd * d);
  rms_final_ = r.take(d);
  // freq_cis_real and freq_cis_imag: precomputed RoPE tables we recompute instead.
  r.skip(static_cast<size_t>(cfg_.seq_len) * static_cast<size_t>(cfg_.head_size()));
  wcls_ = cfg_.shared_classifier ? token_embedding_ : r.take(V * d);
  if (r.remaining() != 0) throw std::runtime_error("naive reader: trailing bytes after the tensors in " + path);

  layers_.resize(L);
  for (size_t l = 0; l < L; ++l) {
    Layer& y = layers_[l];
    y.rms_att = std::move(rms_att[l]);
    y.wq = std::move(wq[l]);
    y.wk = std::move(wk[l]);
    y.wv = std::move(wv[l]);
    y.wo = std::move(wo[l]);
    y.rms_ffn = std::move(rms_ffn[l]);
    y.w1 = std::move(w1[l]);
    y.w2 = std::move(w2[l]);
    y.w3 = std::move(w3[l]);
  }
}

// GGUF `llama` and `qwen2` (shared/docs/model-families.md §1.3, §1.4): the same block,
// qwen2 with q/k/v biases and NEOX-style pairs; Llama 3's per-pair divisors in
// rope_freqs.weight; the head tied to the embedding when output.weight is absent.
void NaiveLlama::read_gguf(const std::string& path) {
  const NaiveGguf g(path);
  const std::string arch = g.string("general.architecture").value_or("");
  if (arch != "llama" && arch != "qwen2") throw std::runtime_error("naive llama: architecture " + arch);
  const auto key = [&](const std::string& k) { return arch + "." + k; };
  const auto num = [&](const std::string& k) { return static_cast<int>(g.require_number(key(k))); };
  cfg_.dim = num("embedding_length");
  cfg_.hidden_dim = num("feed_forward_length");
  cfg_.n_layers = num("block_count");
  cfg_.n_heads = num("attention.head_count");
  cfg_.n_kv_heads = static_cast<int>(g.number_or(key("attention.head_count_kv"), cfg_.n_heads));
  cfg_.head_dim = static_cast<int>(g.number_or(key("attention.key_length"), cfg_.dim / cfg_.n_heads));
  cfg_.seq_len = num("context_length");
  eps_ = g.number_or(key("attention.layer_norm_rms_epsilon"), 1e-5);
  rope_.neox = arch == "qwen2";
  rope_.n_rot = static_cast<int>(g.number_or(key("rope.dimension_count"), cfg_.head_size()));
  rope_.base = static_cast<float>(g.number_or(key("rope.freq_base"), 10000.0));
  if (g.has_tensor("rope_freqs.weight")) {
    for (double f : g.tensor("rope_freqs.weight")) rope_.factors.push_back(static_cast<float>(f));
  }
  std::vector<uint64_t> ne;
  token_embedding_ = g.tensor("token_embd.weight", &ne);
  cfg_.vocab_size = static_cast<int>(ne[1]);
  cfg_.shared_classifier = !g.has_tensor("output.weight");
  wcls_ = cfg_.shared_classifier ? token_embedding_ : g.tensor("output.weight");
  rms_final_ = g.tensor("output_norm.weight");
  layers_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const auto opt = [&](const std::string& n) { return g.has_tensor(b + n) ? g.tensor(b + n) : Vec{}; };
    Layer& y = layers_[static_cast<size_t>(l)];
    y.rms_att = g.tensor(b + "attn_norm.weight");
    y.wq = g.tensor(b + "attn_q.weight");
    y.wk = g.tensor(b + "attn_k.weight");
    y.wv = g.tensor(b + "attn_v.weight");
    y.bq = opt("attn_q.bias");
    y.bk = opt("attn_k.bias");
    y.bv = opt("attn_v.bias");
    y.wo = g.tensor(b + "attn_output.weight");
    y.rms_ffn = g.tensor(b + "ffn_norm.weight");
    y.w1 = g.tensor(b + "ffn_gate.weight");
    y.w2 = g.tensor(b + "ffn_down.weight");
    y.w3 = g.tensor(b + "ffn_up.weight");
  }
}

std::vector<Vec> NaiveLlama::step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                                  const Visibility& visible, std::vector<NaiveStepStats>* stats,
                                  const NaiveKvHooks* hooks) const {
  const int T = static_cast<int>(tokens.size());
  const int d = cfg_.dim, hs = cfg_.head_size(), qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  if (store.k.empty()) {
    store.k.resize(static_cast<size_t>(cfg_.n_layers));
    store.v.resize(static_cast<size_t>(cfg_.n_layers));
  }
  if (stats) stats->assign(static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads), NaiveStepStats{});

  // Residual stream of every row.
  std::vector<Vec> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const int tok = tokens[static_cast<size_t>(t)];
    if (tok < 0 || tok >= cfg_.vocab_size) throw std::runtime_error("naive forward: token out of range");
    x[static_cast<size_t>(t)].assign(token_embedding_.begin() + static_cast<std::ptrdiff_t>(tok) * d,
                                     token_embedding_.begin() + static_cast<std::ptrdiff_t>(tok + 1) * d);
  }

  for (int l = 0; l < cfg_.n_layers; ++l) {
    const Layer& W = layers_[static_cast<size_t>(l)];
    auto& K = store.k[static_cast<size_t>(l)];
    auto& Vv = store.v[static_cast<size_t>(l)];
    if (static_cast<int>(K.size()) != first_pos) throw std::runtime_error("naive forward: positions out of order");

    // q, k, v of every row first, so that the chunk's keys are in the store before any
    // row attends (the causal part of the chunk is then up to `visible`).
    std::vector<Vec> q(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      const Vec xb = rmsnorm(x[static_cast<size_t>(t)], W.rms_att, eps_);
      q[static_cast<size_t>(t)] = matvec(W.wq, xb, qd, d, W.bq);
      Vec k = matvec(W.wk, xb, kvd, d, W.bk);
      Vec v = matvec(W.wv, xb, kvd, d, W.bv);
      position_and_store(rope_, hooks, hs, first_pos + t, q[static_cast<size_t>(t)], k, v);
      K.push_back(std::move(k));
      Vv.push_back(std::move(v));
    }

    for (int t = 0; t < T; ++t) {
      const Vec att = attend(cfg_, l, K, Vv, q[static_cast<size_t>(t)], first_pos + t, t, T, visible, stats, rope_, hooks);
      const Vec o = matvec(W.wo, att, d, qd);
      Vec& xr = x[static_cast<size_t>(t)];
      for (int i = 0; i < d; ++i) xr[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      // SwiGLU feed-forward: w2(silu(w1 x) * w3 x).
      const Vec xb = rmsnorm(xr, W.rms_ffn, eps_);
      const Vec h1 = matvec(W.w1, xb, cfg_.hidden_dim, d);
      const Vec h3 = matvec(W.w3, xb, cfg_.hidden_dim, d);
      Vec hh(h1.size());
      for (size_t i = 0; i < hh.size(); ++i) hh[i] = silu(h1[i]) * h3[i];
      const Vec f = matvec(W.w2, hh, d, cfg_.hidden_dim);
      for (int i = 0; i < d; ++i) xr[static_cast<size_t>(i)] += f[static_cast<size_t>(i)];
    }
  }

  std::vector<Vec> logits(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const Vec xf = rmsnorm(x[static_cast<size_t>(t)], rms_final_, eps_);
    logits[static_cast<size_t>(t)] = matvec(wcls_, xf, cfg_.vocab_size, d);
  }
  return logits;
}

Vec log_softmax(std::span<const double> logits) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (double z : logits) sum += std::exp(z - mx);
  const double lse = mx + std::log(sum);
  Vec out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
  return out;
}

Vec log_softmax(std::span<const float> logits) {
  const Vec wide(logits.begin(), logits.end());
  return log_softmax(std::span<const double>(wide));
}

// ---------------------------------------------------------------------------------------
// The bounded KV cache as masks.

NaiveKvReference::NaiveKvReference(const NaiveModel& model, NaivePolicy policy)
    : model_(model), policy_(std::move(policy)) {
  const auto& n = policy_.name;
  if (n != "full" && n != "window" && n != "sink" && n != "h2o" && n != "tova" && n != "random")
    throw std::runtime_error("naive reference: unknown policy " + n);
  if (n != "full" && policy_.budget < 1) throw std::runtime_error("naive reference: budget must be >= 1");
  if (policy_.positions != "absolute" && policy_.positions != "cache")
    throw std::runtime_error("naive reference: unknown positions " + policy_.positions);
  if (policy_.type != "f32" && policy_.type != "f16" && policy_.type != "q8")
    throw std::runtime_error("naive reference: unknown storage type " + policy_.type);
  const size_t heads = static_cast<size_t>(model_.config().n_layers * model_.config().n_kv_heads);
  kept_.resize(heads);
  score_.resize(heads);
}

size_t NaiveKvReference::index(int layer, int kv_head) const {
  return static_cast<size_t>(layer * model_.config().n_kv_heads + kv_head);
}

const std::set<int>& NaiveKvReference::kept(int layer, int kv_head) const { return kept_[index(layer, kv_head)]; }

double NaiveKvReference::score(int layer, int kv_head, int pos) const {
  const auto& m = score_[index(layer, kv_head)];
  auto it = m.find(pos);
  return it == m.end() ? 0.0 : it->second;
}

double NaiveKvReference::min_margin() const {
  double m = std::numeric_limits<double>::infinity();
  for (const auto& e : evictions_) m = std::min(m, e.margin);
  return m;
}

std::vector<Vec> NaiveKvReference::step(std::span<const int32_t> tokens) {
  const int first = next_pos_;
  const int T = static_cast<int>(tokens.size());
  const auto& cfg = model_.config();
  // Step 1: the new tokens are kept, with score 0.
  for (int l = 0; l < cfg.n_layers; ++l) {
    for (int h = 0; h < cfg.n_kv_heads; ++h) {
      for (int t = 0; t < T; ++t) {
        kept_[index(l, h)].insert(first + t);
        score_[index(l, h)][first + t] = 0.0;
      }
    }
  }
  // Step 2: every row attends to the kept tokens at or before its position.
  auto visible = [this](int l, int h, int qpos, int kpos) {
    return kpos <= qpos && kept_[index(l, h)].count(kpos) == 1;
  };
  std::vector<NaiveStepStats>& stats = last_stats_;
  // `cache` positions: a token's rank in each (layer, KV head)'s kept set, this step's new
  // tokens included (eviction comes after attention).
  if (policy_.positions == "cache") {
    rank_.assign(kept_.size(), {});
    for (size_t i = 0; i < kept_.size(); ++i) {
      int r = 0;
      for (int pos : kept_[i]) rank_[i][pos] = r++;
    }
  }
  const NaiveKvHooks kv_hooks = hooks();
  std::vector<Vec> logits = model_.step(store_, tokens, first, visible, &stats, &kv_hooks);
  next_pos_ += T;
  // Steps 3 and 4 per (layer, KV head): score update, then eviction.
  for (int l = 0; l < cfg.n_layers; ++l) {
    for (int h = 0; h < cfg.n_kv_heads; ++h) {
      const NaiveStepStats& st = stats[index(l, h)];
      for (const auto& [pos, m] : st.mass) score_[index(l, h)][pos] += m;
      evict(l, h, st);
    }
  }
  std::vector<Vec> out;
  out.reserve(logits.size());
  for (const Vec& z : logits) out.push_back(log_softmax(std::span<const double>(z)));
  return out;
}

NaiveKvHooks NaiveKvReference::hooks() const {
  NaiveKvHooks h;
  if (policy_.positions == "cache")
    h.rotation_position = [this](int layer, int kv_head, int pos) { return rank_[index(layer, kv_head)].at(pos); };
  if (policy_.type == "f16") {
    h.store = [](double* x, int n) {
      for (int i = 0; i < n; ++i) x[i] = round_to_half(static_cast<float>(x[i]));
    };
  } else if (policy_.type == "q8") {
    h.store = &store_as_q8;
  }
  return h;
}

std::vector<Vec> NaiveKvReference::run(std::span<const int32_t> tokens, const std::vector<int>& step_sizes) {
  std::vector<Vec> out;
  size_t at = 0;
  for (int n : step_sizes) {
    if (n <= 0 || at + static_cast<size_t>(n) > tokens.size()) throw std::runtime_error("naive reference: bad steps");
    auto part = step(tokens.subspan(at, static_cast<size_t>(n)));
    for (auto& row : part) out.push_back(std::move(row));
    at += static_cast<size_t>(n);
  }
  if (at != tokens.size()) throw std::runtime_error("naive reference: steps do not cover the tokens");
  return out;
}

std::set<int> NaiveKvReference::protected_positions(const std::set<int>& kept) const {
  std::set<int> prot;
  const auto& n = policy_.name;
  if (n == "h2o" || n == "random") {
    // The R highest positions.
    int left = policy_.recent;
    for (auto it = kept.rbegin(); it != kept.rend() && left > 0; ++it, --left) prot.insert(*it);
  } else if (n == "sink") {
    // The S lowest positions.
    int left = policy_.sinks;
    for (auto it = kept.begin(); it != kept.end() && left > 0; ++it, --left) prot.insert(*it);
  }
  return prot;
}

double NaiveKvReference::removal_key(int layer, int kv_head, int pos, const NaiveStepStats& st) const {
  const auto& n = policy_.name;
  if (n == "window" || n == "sink") return pos;
  if (n == "h2o") return score_[index(layer, kv_head)].at(pos);
  if (n == "tova") {
    auto it = st.last_row.find(pos);
    return it == st.last_row.end() ? 0.0 : it->second;
  }
  if (n == "random") return random_eviction_key(policy_.seed, layer, kv_head, next_pos_, pos);
  throw std::runtime_error("naive reference: policy " + n + " has no removal key");
}

void NaiveKvReference::evict(int layer, int kv_head, const NaiveStepStats& st) {
  if (policy_.name == "full") return;
  std::set<int>& kept = kept_[index(layer, kv_head)];
  if (static_cast<int>(kept.size()) <= policy_.budget) return;
  NaiveEviction rec;
  rec.tokens_seen = next_pos_;
  rec.layer = layer;
  rec.kv_head = kv_head;
  double worst_victim = -std::numeric_limits<double>::infinity();
  // One removal at a time, re-deriving the protected set each time.
  while (static_cast<int>(kept.size()) > policy_.budget) {
    const std::set<int> prot = protected_positions(kept);
    int victim = -1;
    double victim_key = 0.0;
    for (int pos : kept) {  // ascending position: on equal keys the older one wins
      if (prot.count(pos)) continue;
      const double key = removal_key(layer, kv_head, pos, st);
      if (victim < 0 || key < victim_key) {
        victim = pos;
        victim_key = key;
      }
    }
    if (victim < 0) throw std::runtime_error("naive reference: everything is protected");
    kept.erase(victim);
    rec.victims.push_back(victim);
    worst_victim = std::max(worst_victim, victim_key);
  }
  const std::set<int> prot = protected_positions(kept);
  for (int pos : kept) {
    if (!prot.count(pos)) rec.margin = std::min(rec.margin, removal_key(layer, kv_head, pos, st) - worst_victim);
  }
  evictions_.push_back(std::move(rec));
}

double NaiveKvReference::step_key(int layer, int kv_head, int pos) const {
  return removal_key(layer, kv_head, pos, last_stats_.at(index(layer, kv_head)));
}

std::string NaiveKvReference::adopt_near_tie(int layer, int kv_head, const std::set<int>& other, double rel_tol) {
  std::set<int>& ours = kept_[index(layer, kv_head)];
  if (other == ours) return "";
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return std::string(buf);
  };
  if (other.size() != ours.size()) return "it keeps " + std::to_string(other.size()) + " slots, not " +
                                          std::to_string(ours.size());
  for (int p : protected_positions(ours)) {
    if (!other.count(p)) return "it lost protected position " + std::to_string(p);
  }
  // Positions it kept that we removed must have been removed by us in this very step
  // (anything older would be an evicted position coming back).
  const NaiveEviction* ev = nullptr;
  for (const auto& e : evictions_) {
    if (e.tokens_seen == next_pos_ && e.layer == layer && e.kv_head == kv_head) ev = &e;
  }
  double lowest_theirs = std::numeric_limits<double>::infinity();   // keys it kept and we removed
  double highest_ours = -std::numeric_limits<double>::infinity();   // keys it removed and we kept
  for (int p : other) {
    if (ours.count(p)) continue;
    if (!ev || std::find(ev->victims.begin(), ev->victims.end(), p) == ev->victims.end())
      return "it holds position " + std::to_string(p) + ", which was not a candidate in this step";
    lowest_theirs = std::min(lowest_theirs, step_key(layer, kv_head, p));
  }
  for (int p : ours) {
    if (!other.count(p)) highest_ours = std::max(highest_ours, step_key(layer, kv_head, p));
  }
  const double gap = highest_ours - lowest_theirs;
  const double scale = std::max(std::fabs(highest_ours), std::fabs(lowest_theirs));
  const std::string keys = "keys " + fmt(lowest_theirs) + " (it kept) vs " + fmt(highest_ours) + " (it removed)";
  if (!(gap <= rel_tol * scale)) return "not a near-tie: " + keys;
  ours = other;
  return "";
}

std::vector<int> chunk_steps(int n, int chunk) {
  std::vector<int> steps;
  if (chunk <= 0) chunk = n;
  for (int at = 0; at < n; at += chunk) steps.push_back(std::min(chunk, n - at));
  return steps;
}

}  // namespace h2o::ref
