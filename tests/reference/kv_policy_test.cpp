// The engine's bounded KV cache against the naive reference (reference/naive_llama.h),
// which implements shared/spec/kv-policies.md as full attention under a kept mask per
// (layer, KV head), in double precision: every policy, chunking, position mode (absolute,
// cache) and storage type (f32, f16, q8). Plus the spec's invariants, checked on the
// engine through Session::kv_cache().
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "fixtures/family_refs.h"
#include "kernels/dispatch.h"
#include "kernels/kv_kernels.h"
#include "kv/kv_config.h"
#include "kv/policy.h"
#include "reference/naive_llama.h"
#include "reference/ref_test_util.h"

namespace h2o {
namespace {

using ref::NaiveKvReference;
using ref::NaivePolicy;
using ref::Vec;

// Tokens of real text for the grid. 450 keeps every budget but 400 well exercised
// (400 evicts during the last 50 tokens) and stays under the context of 512.
constexpr int kGridTokens = 450;
// In the "whole prompt" mode the first kPromptTokens go in one step (attention over the
// whole prompt, one eviction at its end, as the H2O reference code does), and the rest
// are decoded one token per step.
constexpr int kPromptTokens = 200;
constexpr double kTolerance = 1e-4;  // f32 storage, either position mode


struct GridCase {
  std::string policy;
  int budget = 0;
  int recent = 0;  // h2o, random
  int sinks = 0;   // sink
  uint64_t seed = 0;
  int chunk = 0;   // 1, 7, or 0 = whole prompt then decoding
  std::string model = "stories260K";  // or a model-family fixture (families/<model>.gguf)
  std::string positions = "absolute";  // absolute, cache
  std::string type = "f32";            // f32, f16, q8
};

bool is_family(const GridCase& c) { return c.model != "stories260K"; }

// The grid's model, its naive reference and its tokens: stories260K on real text, or a
// model-family fixture (a GGUF file, or OPT's Hugging Face directory) on the first
// kFamilyTokens ids of its `long` reference prompt.
constexpr int kFamilyTokens = 100;
constexpr int kFamilyPromptTokens = 50;
std::string family_file(const GridCase& c) { return c.model == "opt-tiny" ? c.model : c.model + ".gguf"; }
std::shared_ptr<const Model> grid_model(const GridCase& c) {
  return is_family(c) ? test::load_model_cached(test::family_path(family_file(c))) : test::stories_bin();
}
const ref::NaiveModel& grid_naive(const GridCase& c) {
  return test::naive_model(is_family(c) ? "families/" + family_file(c) : "stories260K.bin");
}
const std::vector<int32_t>& grid_tokens(const GridCase& c) {
  static std::map<std::string, std::vector<int32_t>> cache;
  auto& t = cache[c.model];
  if (t.empty()) {
    if (is_family(c)) {
      t = test::load_family_ref(c.model, "long").prompt_ids;
      t.resize(kFamilyTokens);
    } else {
      t = test::text_tokens(*test::stories_bin(), kGridTokens);
    }
  }
  return t;
}

// |dlogp| allowed against the double reference, over every logprob of every row: the
// largest and the mean. The reference rounds its own (double) K and V to the storage type,
// the engine its fp32 ones; they differ by ~1e-6 relative, so a value that close to a
// rounding boundary lands on the other side: one f16 ulp (2^-10 relative) or one q8 step
// (max / 127) on that element. On stories260K (head_dim 8) about 0.5% of the f16 values
// flip, and the worst logprob of the far tail moves by up to ~0.06 (f16) / ~0.3 (q8),
// comparable to what f16 storage itself does to it (0.046): the largest difference
// cannot tell f16 from f32. The mean can (f16 moves it by 2.9e-3, q8 by 0.13, the flips
// by < 1e-3), and KvModes.ReducedTypesAreHeldCloserThanTheirOwnEffect checks that directly.
// Measured worst over the grid (the summary lines): q8 0.31 / mean 4.5e-3 (h2o, after a
// near-tie followed at 3%), f16 0.057 / mean 1.5e-3.
double tolerance(const GridCase& c) {
  if (c.type == "q8") return 0.5;
  if (c.type == "f16") return 0.1;
  return kTolerance;
}
double mean_tolerance(const GridCase& c) {
  if (c.type == "q8") return 1e-2;
  if (c.type == "f16") return 2.5e-3;
  return kTolerance;
}

// The mode part of a case's name and of the summary's key.
std::string mode(const GridCase& c) {
  std::string m;
  if (c.positions != "absolute") m += "_" + c.positions;
  if (c.type != "f32") m += "_" + c.type;
  return m;
}

std::string describe(const GridCase& c) {
  std::ostringstream o;
  if (is_family(c)) o << c.model << "_";
  o << c.policy;
  if (c.policy != "full") o << "_B" << c.budget;
  if (c.policy == "h2o" || c.policy == "random") o << "_R" << c.recent;
  if (c.policy == "sink") o << "_S" << c.sinks;
  if (c.policy == "random") o << "_seed" << c.seed;
  o << (c.chunk == 0 ? std::string("_whole") : "_chunk" + std::to_string(c.chunk));
  o << mode(c);
  return o.str();
}

// Names the case in gtest's messages instead of a byte dump.
void PrintTo(const GridCase& c, std::ostream* os) { *os << describe(c); }

SessionOptions engine_options(const GridCase& c, int threads = 1) {
  SessionOptions o;
  o.threads = threads;
  o.kv.policy = c.policy;
  if (c.policy != "full") o.kv.budget = BudgetSpec{static_cast<double>(c.budget), false};
  if (c.policy == "h2o" || c.policy == "random") o.kv.recent = BudgetSpec{static_cast<double>(c.recent), false};
  if (c.policy == "sink") o.kv.sinks = c.sinks;
  o.kv.seed = c.seed;
  o.kv.prefill_chunk = c.chunk;
  o.kv.type = parse_kv_type(c.type);
  o.kv.positions = parse_kv_positions(c.positions);
  return o;
}

NaivePolicy naive_policy(const GridCase& c) {
  return NaivePolicy{c.policy, c.budget, c.recent, c.sinks, c.seed, c.positions, c.type};
}

// The steps a case takes, and the feed() calls that make the engine take them.
std::vector<int> reference_steps(const GridCase& c, int n) {
  if (c.chunk > 0) return ref::chunk_steps(n, c.chunk);
  const int prompt = std::min(is_family(c) ? kFamilyPromptTokens : kPromptTokens, n);
  std::vector<int> s{prompt};
  for (int i = prompt; i < n; ++i) s.push_back(1);
  return s;
}
std::vector<int> engine_feeds(const GridCase& c, int n) {
  if (c.chunk > 0) return {n};  // one call: the engine's own chunking makes the steps
  return reference_steps(c, n);
}

std::set<int> engine_kept(const Session& s, int layer, int head) {
  const KvCache& kv = s.kv_cache();
  const int32_t* p = kv.positions(layer, head);
  return std::set<int>(p, p + kv.n_slots(layer));
}

std::string show(const std::set<int>& s) {
  std::string out;
  for (int p : s) out += (out.empty() ? "" : " ") + std::to_string(p);
  return "{" + out + "}";
}

// Relative gap between removal keys below which a float32 engine may legitimately break
// a tie the other way than the double reference: h2o scores and tova masses are sums of
// fp32 probabilities (h2o's over hundreds of rows), good to ~5 digits (less where a
// reduced storage type rounds a value the other way, see tolerance()). Positions and
// random draws are computed exactly on both sides, so those policies get no slack.
double near_tie_tolerance(const GridCase& c) {
  if (c.policy != "h2o" && c.policy != "tova") return 0.0;
  // Rounding flips (see tolerance()) move scores too: measured up to 3% (q8) / 0.7% (f16).
  return c.type == "q8" ? 0.15 : c.type == "f16" ? 0.03 : 1e-4;
}

// The positions on which the engine's and the reference's kept sets of one (layer, KV
// head) differ, with the reference's removal keys of this step (and the engine's
// accumulated scores for h2o).
std::string kept_difference(const Session& s, const NaiveKvReference& r, int l, int h) {
  const std::set<int> e = engine_kept(s, l, h);
  const std::set<int>& k = r.kept(l, h);
  std::set<int> only_e, only_r;
  std::set_difference(e.begin(), e.end(), k.begin(), k.end(), std::inserter(only_e, only_e.end()));
  std::set_difference(k.begin(), k.end(), e.begin(), e.end(), std::inserter(only_r, only_r.end()));
  std::ostringstream o;
  o.precision(9);
  o << "layer " << l << " kv head " << h << ": engine only " << show(only_e) << ", reference only " << show(only_r);
  const KvCache& kv = s.kv_cache();
  for (int p : only_e) {
    o << "\n  pos " << p << " reference key " << r.step_key(l, h, p);
    for (int i = 0; i < kv.n_slots(l) && r.policy().name == "h2o"; ++i) {
      if (kv.positions(l, h)[i] == p) o << ", engine score " << kv.scores(l, h)[i];
    }
  }
  for (int p : only_r) o << "\n  pos " << p << " reference key " << r.step_key(l, h, p);
  return o.str();
}

// Worst difference seen per policy, printed after all tests.
struct Summary {
  std::mutex mu;
  std::map<std::string, double> worst;
  std::map<std::string, int> cases;
  std::map<std::string, double> min_margin;
  std::map<std::string, int> near_ties;
  std::map<std::string, double> worst_mean;
  void add(const std::string& policy, double diff, double margin, int ties, double mean) {
    std::lock_guard<std::mutex> lock(mu);
    worst[policy] = std::max(worst[policy], diff);
    worst_mean[policy] = std::max(worst_mean[policy], mean);
    ++cases[policy];
    near_ties[policy] += ties;
    if (!min_margin.count(policy)) min_margin[policy] = margin;
    min_margin[policy] = std::min(min_margin[policy], margin);
  }
};
Summary& summary() {
  static Summary s;
  return s;
}
class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [policy, diff] : summary().worst)
      std::printf(
          "[ kv policy summary ] %-16s %3d cases: max |dlogp| = %.3g (largest mean %.3g), smallest reference "
          "eviction margin %.3g, near-ties followed %d\n",
          policy.c_str(), summary().cases[policy], diff, summary().worst_mean[policy], summary().min_margin[policy],
          summary().near_ties[policy]);
  }
};
[[maybe_unused]] auto* const kSummary = ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

class KvPolicyGrid : public ::testing::TestWithParam<GridCase> {};

// Per-token log-probabilities of the engine (float32) against the naive reference
// (double), with the kept sets of every (layer, KV head) compared after every step.
TEST_P(KvPolicyGrid, MatchesNaiveReference) {
  const GridCase& c = GetParam();
  const auto& tokens = grid_tokens(c);
  const int n = static_cast<int>(tokens.size());
  auto model = grid_model(c);
  const auto& naive = grid_naive(c);
  const auto& cfg = naive.config();
  const size_t V = static_cast<size_t>(model->config().vocab_size);

  // The engine as a user runs it: the prompt in one feed() call, chunked by the engine.
  const auto t0 = std::chrono::steady_clock::now();
  Session user(model, engine_options(c));
  const auto logits = test::feed_all(user, tokens, engine_feeds(c, n));
  const auto t1 = std::chrono::steady_clock::now();

  // The same steps one feed() each, in lockstep with the reference. A kept set that
  // differs from the reference's is a failure unless it is a near-tie, which the
  // reference then follows (see NaiveKvReference::adopt_near_tie) and which is reported.
  Session stepped(model, engine_options(c));
  NaiveKvReference r(naive, naive_policy(c));
  std::vector<Vec> expected;
  std::vector<float> stepped_logits, part_logits;
  int near_ties = 0;
  size_t at = 0;
  for (int step : reference_steps(c, n)) {
    const std::span<const int32_t> part(tokens.data() + at, static_cast<size_t>(step));
    stepped.feed(part, &part_logits);
    stepped_logits.insert(stepped_logits.end(), part_logits.begin(), part_logits.end());
    for (auto& row : r.step(part)) expected.push_back(std::move(row));
    at += static_cast<size_t>(step);
    for (int l = 0; l < cfg.n_layers; ++l) {
      for (int h = 0; h < cfg.n_kv_heads; ++h) {
        if (engine_kept(stepped, l, h) == r.kept(l, h)) continue;
        const std::string diff = kept_difference(stepped, r, l, h);
        const std::string why = r.adopt_near_tie(l, h, engine_kept(stepped, l, h), near_tie_tolerance(c));
        if (!why.empty()) {
          FAIL() << describe(c) << ": kept sets diverge after " << at << " tokens, " << diff << "\n  " << why;
        }
        ++near_ties;
        std::printf("[ kv policy ] %s: near-tie after %zu tokens, %s\n", describe(c).c_str(), at, diff.c_str());
      }
    }
  }
  const auto t2 = std::chrono::steady_clock::now();

  // One feed() per step and one feed() for everything take the same steps: same bits.
  ASSERT_EQ(stepped_logits.size(), logits.size());
  EXPECT_EQ(std::memcmp(stepped_logits.data(), logits.data(), logits.size() * sizeof(float)), 0)
      << describe(c) << ": chunking inside feed() differs from one feed() per step";

  const auto engine = test::engine_logprobs(logits, V);
  const double diff = test::max_abs_diff(engine, expected), mean = test::mean_abs_diff(engine, expected);
  summary().add(c.policy + mode(c), diff, r.min_margin(), near_ties, mean);
  std::printf(
      "[ kv policy ] %-30s max |dlogp| = %.3g (mean %.3g), min margin %.3g, near-ties %d (engine %.3fs, "
      "lockstep %.3fs)\n",
      describe(c).c_str(), diff, mean, r.min_margin(), near_ties, std::chrono::duration<double>(t1 - t0).count(),
      std::chrono::duration<double>(t2 - t1).count());
  EXPECT_LE(diff, tolerance(c)) << describe(c);
  EXPECT_LE(mean, mean_tolerance(c)) << describe(c);
}

// The full grid on all 450 tokens: 123 cases in the paper's mode (absolute positions, f32),
// about 50 s in a Release build on one core (the double reference takes ~85% of it), so no
// case needs a shorter text; then 24 cases for each of the 5 other (positions, type) modes.
std::vector<GridCase> grid() {
  std::vector<GridCase> cases;
  for (int chunk : {1, 7, 0}) {
    // `full` has no budget: once per chunking.
    cases.push_back({"full", 0, 0, 0, 0, chunk});
    for (int B : {8, 32, 100, 400}) {
      cases.push_back({"window", B, 0, 0, 0, chunk});
      for (int S : {1, 4}) cases.push_back({"sink", B, 0, S, 0, chunk});
      // recent = B/2 is the paper's default; recent = B degenerates to a window.
      for (int R : {B / 2, 1, B}) cases.push_back({"h2o", B, R, 0, 0, chunk});
      cases.push_back({"tova", B, 0, 0, 0, chunk});
      cases.push_back({"random", B, B / 2, 0, 7, chunk});
      cases.push_back({"random", B, B / 2, 0, 12345, chunk});
      cases.push_back({"random", B, 1, 0, 7, chunk});
    }
  }
  // Every policy on every other architecture (Llama 3 RoPE factors, qwen2 biases and
  // NEOX RoPE, gptneox's partial rotary and parallel residual, OPT's learned positions), with a budget that evicts
  // from the 25th token, one token per step; the score-driven policies also with the
  // prompt in one step. (Their vocabularies are large, so the naive head is the cost.)
  for (const char* m : {"llama3-tiny", "qwen2-tiny", "neox-tiny", "opt-tiny"}) {
    cases.push_back({"full", 0, 0, 0, 0, 1, m});
    cases.push_back({"window", 24, 0, 0, 0, 1, m});
    cases.push_back({"sink", 24, 0, 4, 0, 1, m});
    cases.push_back({"random", 24, 12, 0, 7, 1, m});
    for (int chunk : {1, 0}) {
      cases.push_back({"h2o", 24, 12, 0, 0, chunk, m});
      cases.push_back({"tova", 24, 0, 0, 0, chunk, m});
    }
    // The other positions and storage types on each family (OPT has no rotary embedding
    // to re-index, so `cache` positions are refused for it).
    if (std::string(m) != "opt-tiny") cases.push_back({"h2o", 24, 12, 0, 0, 1, m, "cache", "f32"});
    cases.push_back({"h2o", 24, 12, 0, 0, 1, m, "absolute", "q8"});
  }
  // Every other (positions, storage type): each policy at B = 32 and window/h2o at 100.
  const std::vector<std::pair<std::string, std::string>> modes{
      {"absolute", "f16"}, {"absolute", "q8"}, {"cache", "f32"}, {"cache", "f16"}, {"cache", "q8"}};
  for (const auto& mode : modes) {
    const std::string& positions = mode.first;  // not a structured binding: clang 14's lambdas
    const std::string& type = mode.second;      // cannot capture one (the sanitizer build)
    for (int chunk : {1, 7, 0}) {
      const auto add = [&](GridCase c) {
        c.chunk = chunk;
        c.positions = positions;
        c.type = type;
        cases.push_back(c);
      };
      add({"full", 0, 0, 0, 0, 0});
      add({"window", 32, 0, 0, 0, 0});
      add({"sink", 32, 0, 4, 0, 0});
      add({"h2o", 32, 16, 0, 0, 0});
      add({"tova", 32, 0, 0, 0, 0});
      add({"random", 32, 16, 0, 7, 0});
      add({"window", 100, 0, 0, 0, 0});
      add({"h2o", 100, 50, 0, 0, 0});
    }
  }
  return cases;
}

std::string grid_name(const ::testing::TestParamInfo<GridCase>& param_info) {
  std::string s = describe(param_info.param);
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(KvPolicy, KvPolicyGrid, ::testing::ValuesIn(grid()), grid_name);

// ---------------------------------------------------------------------------------------
// Invariants, engine side.

const std::vector<std::string> kBounded{"window", "sink", "h2o", "tova", "random"};

GridCase bounded_case(const std::string& policy, int budget, int chunk) {
  GridCase c{policy, budget, budget / 2, 4, 99, chunk};
  if (policy == "sink") c.sinks = std::min(4, budget - 1);
  return c;
}

// With B >= tokens seen nothing is ever evicted, so every policy computes exactly what
// `full` does: bit-identical logits (the score bookkeeping must not disturb the math).
TEST(KvPolicyInvariants, BudgetCoveringSequenceIsBitIdenticalToFull) {
  const auto& tokens = grid_tokens(GridCase{});
  const int n = static_cast<int>(tokens.size());
  auto model = test::stories_bin();
  for (int chunk : {1, 7, 0}) {
    GridCase full{"full", 0, 0, 0, 0, chunk};
    Session fs(model, engine_options(full));
    const auto expected = test::feed_all(fs, tokens, engine_feeds(full, n));
    for (const auto& p : kBounded) {
      for (int B : {n, 512}) {
        const GridCase c = bounded_case(p, B, chunk);
        Session s(model, engine_options(c));
        const auto got = test::feed_all(s, tokens, engine_feeds(c, n));
        ASSERT_EQ(got.size(), expected.size());
        EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0) << describe(c);
        EXPECT_EQ(s.kv_cache().n_slots(0), n) << describe(c);
      }
    }
  }
}

// Between steps: exactly min(B, seen) slots per (layer, KV head), distinct positions
// already seen, the R most recent always present (h2o, random), the sinks present
// (sink), a window of exactly the last B (window), and no evicted position ever back.
TEST(KvPolicyInvariants, SlotSetsBetweenSteps) {
  const auto& tokens = grid_tokens(GridCase{});
  const int n = static_cast<int>(tokens.size());
  auto model = test::stories_bin();
  const auto& cfg = model->config();
  for (const auto& p : kBounded) {
    for (int B : {8, 32, 100}) {
      for (int chunk : {1, 7, 0}) {
        GridCase c = bounded_case(p, B, chunk);
        if (p == "h2o" && B == 32) c.recent = 1;  // a small R too
        SCOPED_TRACE(describe(c));
        Session s(model, engine_options(c));
        std::vector<std::set<int>> prev(static_cast<size_t>(cfg.n_layers * cfg.n_kv_heads));
        int seen = 0, largest_step = 0;
        for (int step : reference_steps(c, n)) {
          s.feed(std::span<const int32_t>(tokens.data() + seen, static_cast<size_t>(step)));
          const int before = seen;
          seen += step;
          largest_step = std::max(largest_step, step);
          const KvCache& kv = s.kv_cache();
          // Memory: at most B + T slots are ever needed (T the largest step), never
          // more than the context holds.
          EXPECT_LE(kv.capacity(), std::min(B + largest_step, cfg.context_length));
          for (int l = 0; l < cfg.n_layers; ++l) {
            ASSERT_EQ(kv.n_slots(l), std::min(B, seen)) << "layer " << l << " after " << seen;
            for (int h = 0; h < cfg.n_kv_heads; ++h) {
              const std::set<int> now = engine_kept(s, l, h);
              ASSERT_EQ(static_cast<int>(now.size()), kv.n_slots(l)) << "duplicate positions";
              ASSERT_GE(*now.begin(), 0);
              ASSERT_LT(*now.rbegin(), seen);
              auto& old = prev[static_cast<size_t>(l * cfg.n_kv_heads + h)];
              for (int pos : now) {
                ASSERT_TRUE(pos >= before || old.count(pos)) << "position " << pos << " came back, layer " << l
                                                             << " head " << h << " after " << seen;
              }
              int must_from = seen, must_to = seen;  // [from, to) must be present
              if (p == "h2o" || p == "random") must_from = std::max(0, seen - c.recent);
              if (p == "window") must_from = std::max(0, seen - B);
              for (int pos = must_from; pos < must_to; ++pos) ASSERT_TRUE(now.count(pos)) << "recent " << pos;
              if (p == "window") {
                ASSERT_EQ(*now.begin(), std::max(0, seen - B));
              }
              if (p == "sink") {
                for (int pos = 0; pos < std::min(c.sinks, seen); ++pos) ASSERT_TRUE(now.count(pos)) << "sink " << pos;
              }
              old = now;
            }
          }
        }
      }
    }
  }
}

// `window` with budget B, one token per step, is full attention under the sliding-window
// causal mask qpos - B <= kpos <= qpos (B kept slots plus the token itself).
TEST(KvPolicyInvariants, WindowEqualsSlidingWindowMask) {
  const auto& tokens = grid_tokens(GridCase{});
  const int n = static_cast<int>(tokens.size());
  auto model = test::stories_bin();
  const auto& naive = test::naive_model("stories260K.bin");
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  for (int B : {8, 32, 100}) {
    const GridCase c{"window", B, 0, 0, 0, 1};
    Session s(model, engine_options(c));
    const auto logits = test::feed_all(s, tokens, {n});
    const auto masked = naive.logits_with_mask(tokens, [B](int, int, int q, int k) { return k <= q && k >= q - B; });
    const double diff = test::max_abs_diff(logits, masked, V);
    std::printf("[ kv policy ] window B=%d vs sliding-window mask: max |dlogit| = %.3g\n", B, diff);
    EXPECT_LE(diff, kTolerance) << "B=" << B;
  }
}

// KV memory is bounded by the budget: once reached, feeding more tokens allocates nothing.
TEST(KvPolicyInvariants, KvBytesStopGrowingAtBudget) {
  auto model = test::stories_bin();
  const auto tokens = test::text_tokens(*model, 480);
  auto run = [&](const GridCase& c, size_t& at100, size_t& at_end, size_t& peak) {
    Session s(model, engine_options(c));
    s.feed(std::span<const int32_t>(tokens.data(), 100));
    at100 = s.kv_bytes();
    for (size_t i = 100; i < tokens.size(); ++i) s.feed(std::span<const int32_t>(tokens.data() + i, 1));
    at_end = s.kv_bytes();
    peak = s.kv_bytes_peak();
  };
  for (const auto& p : kBounded) {
    for (int chunk : {1, 0}) {
      const GridCase c = bounded_case(p, 64, chunk);
      size_t a = 0, b = 0, peak = 0;
      run(c, a, b, peak);
      EXPECT_GT(a, 0u) << describe(c);
      EXPECT_EQ(a, b) << describe(c);
      EXPECT_EQ(peak, b) << describe(c);
    }
  }
  size_t a = 0, b = 0, peak = 0;
  run(GridCase{"full", 0, 0, 0, 0, 1}, a, b, peak);
  EXPECT_GT(b, a) << "full must grow with the sequence";
  std::printf("[ kv policy ] full: %zu bytes after 100 tokens, %zu after %zu\n", a, b, tokens.size());
}

// For a fixed thread count, seed and input, results are bit-for-bit repeatable; and the
// engine's threading does not change them either (1 vs 2 threads).
TEST(KvPolicyInvariants, RepeatableAndThreadIndependent) {
  const auto& tokens = grid_tokens(GridCase{});
  const int n = static_cast<int>(tokens.size());
  auto model = test::stories_bin();
  const auto& cfg = model->config();
  for (const std::string p : {"full", "window", "sink", "h2o", "tova", "random"}) {
    for (int chunk : {1, 7}) {
      const GridCase c = p == "full" ? GridCase{"full", 0, 0, 0, 0, chunk} : bounded_case(p, 32, chunk);
      Session a(model, engine_options(c, 1)), b(model, engine_options(c, 1)), t2(model, engine_options(c, 2));
      const auto la = test::feed_all(a, tokens, {n});
      const auto lb = test::feed_all(b, tokens, {n});
      const auto l2 = test::feed_all(t2, tokens, {n});
      EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0) << describe(c) << " repeat";
      EXPECT_EQ(std::memcmp(la.data(), l2.data(), la.size() * sizeof(float)), 0) << describe(c) << " 2 threads";
      for (int l = 0; l < cfg.n_layers; ++l) {
        for (int h = 0; h < cfg.n_kv_heads; ++h) EXPECT_EQ(engine_kept(a, l, h), engine_kept(t2, l, h)) << describe(c);
      }
      // A reset session starts the same sequence over and gives the same answer.
      a.reset();
      const auto again = test::feed_all(a, tokens, {n});
      EXPECT_EQ(std::memcmp(la.data(), again.data(), la.size() * sizeof(float)), 0) << describe(c) << " after reset";
    }
  }
}

// "Lowest key first; ties: older position first", on the engine's policies directly.
// Real text rarely produces exact ties (tova's underflowed last-row masses are the one
// place they occur), so they are forced here, with slots in scrambled order.
TEST(KvPolicyInvariants, TiesEvictOlderPositionFirst) {
  const std::vector<int32_t> pos{50, 10, 90, 30, 70, 80, 20, 60};
  const std::vector<float> equal(pos.size(), 0.25f);
  auto victims = [&](const KvResolved& kv, const std::vector<float>& score, int n_evict) {
    auto policy = make_policy(kv);
    SlotView v;
    v.pos = pos.data();
    v.score = score.data();
    v.last_row = score.data();
    v.n = static_cast<int>(pos.size());
    std::vector<int> out;
    policy->select_victims(v, EvictionSite{0, 0, 100}, n_evict, out);
    std::set<int> positions;
    for (int i : out) positions.insert(pos[static_cast<size_t>(i)]);
    EXPECT_EQ(positions.size(), out.size()) << "distinct victims";
    return positions;
  };
  KvResolved h2o_kv{"h2o", 6, 2, 0, 0};
  EXPECT_EQ(victims(h2o_kv, equal, 3), (std::set<int>{10, 20, 30}));
  KvResolved tova_kv{"tova", 6, 0, 0, 0};
  EXPECT_EQ(victims(tova_kv, equal, 3), (std::set<int>{10, 20, 30}));
  // A lower key still goes first, whatever its age; the tie among the rest by age.
  std::vector<float> one_low = equal;
  one_low[2] = 0.125f;  // position 90
  KvResolved tova_kv2{"tova", 6, 0, 0, 0};
  EXPECT_EQ(victims(tova_kv2, one_low, 2), (std::set<int>{10, 90}));
  // h2o never takes the R most recent, even with the lowest score.
  EXPECT_EQ(victims(h2o_kv, one_low, 2), (std::set<int>{10, 20}));
  KvResolved window_kv{"window", 6, 0, 0, 0};
  EXPECT_EQ(victims(window_kv, equal, 2), (std::set<int>{10, 20}));
  KvResolved sink_kv{"sink", 6, 0, 2, 0};
  EXPECT_EQ(victims(sink_kv, equal, 2), (std::set<int>{30, 50}));
}

// The protected sets (mark_most_recent / mark_oldest) against a sort, on distinct
// positions that hold a run at the end or the start (their fast path) and that do not
// (gaps everywhere: nth_element), for every count; and select_lowest's one-victim pass
// against the (key, position) minimum.
TEST(KvPolicyInvariants, ProtectedSetsAndOneVictimMatchASort) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + trial % 40;
    std::vector<int32_t> pos;
    const int shape = trial % 3;  // 0: a run at both ends, 1: gaps, 2: a run at the top only
    for (int i = 0; i < n; ++i)
      pos.push_back(shape == 0 ? 100 + i : shape == 1 ? 100 + 3 * i : (i < n / 2 ? 7 * i : 1000 + i));
    std::shuffle(pos.begin(), pos.end(), rng);
    SlotView v;
    v.pos = pos.data();
    v.n = n;
    std::vector<int32_t> sorted = pos;
    std::sort(sorted.begin(), sorted.end());
    for (int count = 0; count <= n + 1; ++count) {
      std::vector<uint8_t> recent(static_cast<size_t>(n), 0), oldest(static_cast<size_t>(n), 0);
      mark_most_recent(v, count, recent);
      mark_oldest(v, count, oldest);
      const int c = std::min(count, n);
      for (int i = 0; i < n; ++i) {
        const auto rank = std::lower_bound(sorted.begin(), sorted.end(), pos[static_cast<size_t>(i)]) - sorted.begin();
        EXPECT_EQ(recent[static_cast<size_t>(i)] != 0, rank >= n - c) << "trial " << trial << " count " << count;
        EXPECT_EQ(oldest[static_cast<size_t>(i)] != 0, rank < c) << "trial " << trial << " count " << count;
      }
    }
    // One victim: the lowest key among the unprotected, the older on a tie.
    std::vector<double> key(static_cast<size_t>(n));
    for (auto& k : key) k = static_cast<double>(rng() % 4);
    std::vector<uint8_t> prot(static_cast<size_t>(n), 0);
    for (auto& p : prot) p = rng() % 3 == 0;
    if (std::count(prot.begin(), prot.end(), 0) == 0) prot[0] = 0;
    std::vector<int> got;
    select_lowest(v, prot, key, 1, got);
    int want = -1;
    for (int i = 0; i < n; ++i) {
      if (prot[static_cast<size_t>(i)]) continue;
      if (want < 0 || key[static_cast<size_t>(i)] < key[static_cast<size_t>(want)] ||
          (key[static_cast<size_t>(i)] == key[static_cast<size_t>(want)] &&
           pos[static_cast<size_t>(i)] < pos[static_cast<size_t>(want)]))
        want = i;
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], want) << "trial " << trial;
  }
}

// The one-victim shortcut of h2o and tova against the general path it stands for
// (mark_most_recent + select_lowest over the scores as doubles): the same slot wherever it
// answers, and an answer wherever its conditions hold (a run of recent positions, scores
// non-negative and not NaN), so the shortcut is what decoding runs; and every SIMD
// target's scan (the KV kernels' lowest_outside_recent) gives the answer the scalar
// reference gives, -1 included. Scores come from a few values (ties broken by position),
// with zeros and infinities; some trials plant a NaN, a negative score or -0, where it
// must decline. Sizes cover whole vectors and tails, and a decode step's 411 slots.
TEST(KvPolicyInvariants, OneVictimShortcutChoosesTheGeneralPathsSlot) {
  std::mt19937 rng(11);
  const float values[] = {0.0f, 0.25f, 0.5f, 1.0f, 3.0f, std::numeric_limits<float>::infinity()};
  int answered = 0;
  const KvKernelTable& scalar = kv_kernels_for(SimdTarget{"scalar", 0});
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = trial % 10 == 9 ? 400 + static_cast<int>(rng() % 20) : 1 + static_cast<int>(rng() % 60);
    const int shape = trial % 3;  // 0: consecutive, 1: gaps everywhere, 2: a run at the top only
    std::vector<int32_t> pos;
    for (int i = 0; i < n; ++i)
      pos.push_back(shape == 0 ? 50 + i : shape == 1 ? 50 + 3 * i : (i < n / 2 ? 5 * i : 1000 + i));
    std::shuffle(pos.begin(), pos.end(), rng);
    std::vector<float> score(static_cast<size_t>(n));
    for (auto& x : score) x = values[rng() % std::size(values)];
    const int plant = trial % 7;  // 0: NaN, 1: negative, 2: -0
    if (plant <= 2) {
      score[rng() % static_cast<size_t>(n)] = plant == 0   ? std::numeric_limits<float>::quiet_NaN()
                                              : plant == 1 ? -0.5f
                                                           : -0.0f;
    }
    const int recent = trial % 10 == 9 ? n / 2 : static_cast<int>(rng() % static_cast<unsigned>(n + 2));
    SlotView v;
    v.pos = pos.data();
    v.score = score.data();
    v.n = n;
    const int got = lowest_score_outside_recent(v, score.data(), recent);
    const int want_scan = scalar.lowest_outside_recent(score.data(), pos.data(), pos.size(), recent);
    for (const auto& t : available_simd_targets()) {
      EXPECT_EQ(kv_kernels_for(t).lowest_outside_recent(score.data(), pos.data(), pos.size(), recent), want_scan)
          << t.name << " trial " << trial << " n " << n << " recent " << recent;
    }
    std::vector<int32_t> sorted = pos;
    std::sort(sorted.begin(), sorted.end());
    const int c = std::min(recent, n);
    const bool run = c == 0 || sorted.back() - sorted[static_cast<size_t>(n - c)] == c - 1;
    const bool clean = plant > 2;
    const bool unprotected = recent < n;
    if (run && clean && unprotected) {
      EXPECT_GE(got, 0) << "trial " << trial;
    } else if (!clean || !unprotected) {
      EXPECT_EQ(got, -1) << "trial " << trial;
    }
    if (got < 0) continue;
    ++answered;
    std::vector<uint8_t> prot(static_cast<size_t>(n), 0);
    mark_most_recent(v, recent, prot);
    std::vector<double> key(score.begin(), score.end());
    std::vector<int> want;
    select_lowest(v, prot, key, 1, want);
    ASSERT_EQ(want.size(), 1u);
    EXPECT_EQ(got, want[0]) << "trial " << trial << " n " << n << " recent " << recent;
  }
  EXPECT_GT(answered, 400);  // 561 with this seed
}

TEST(KvPolicyInvariants, ResolveKvRejectsInvalidSettings) {
  auto settings = [](const std::string& policy, const char* budget, const char* recent = nullptr) {
    KvSettings s;
    s.policy = policy;
    if (budget) s.budget = BudgetSpec::parse(budget, "--kv-budget");
    if (recent) s.recent = BudgetSpec::parse(recent, "--kv-recent");
    return s;
  };
  EXPECT_THROW(resolve_kv(settings("lru", "32"), 0), Error);
  EXPECT_THROW(resolve_kv(settings("H2O", "32"), 0), Error);
  EXPECT_THROW(resolve_kv(settings("", "32"), 0), Error);
  for (const char* bad : {"0", "-1", "-32", "abc", "", "12x", "1.5", "150%", "0%", "-5%", "%", "nan", "inf"})
    EXPECT_THROW(BudgetSpec::parse(bad, "--kv-budget"), Error) << "'" << bad << "'";
  EXPECT_THROW(resolve_kv(settings("h2o", "8", "9"), 0), Error);      // recent > budget
  EXPECT_THROW(resolve_kv(settings("random", "8", "9"), 0), Error);   // recent > budget
  EXPECT_THROW(resolve_kv(settings("h2o", nullptr), 0), Error);       // bounded without budget
  EXPECT_THROW(resolve_kv(settings("h2o", "20%"), 0), Error);         // percentage, length unknown
  KvSettings sink = settings("sink", "4");
  sink.sinks = 4;
  EXPECT_THROW(resolve_kv(sink, 0), Error);  // sinks fill the whole budget

  // The accepted forms resolve as documented.
  const KvResolved h = resolve_kv(settings("h2o", "64"), 0);
  EXPECT_EQ(h.budget, 64);
  EXPECT_EQ(h.recent, 32);
  EXPECT_EQ(resolve_kv(settings("h2o", "8", "8"), 0).recent, 8);
  EXPECT_EQ(resolve_kv(settings("h2o", "20%"), 450).budget, 90);
  EXPECT_EQ(resolve_kv(settings("window", "100%"), 450).budget, 450);
  // A Session refuses invalid settings too.
  SessionOptions bad;
  bad.kv = settings("tova", nullptr);
  EXPECT_THROW(Session(test::stories_bin(), bad), Error);
}

}  // namespace
}  // namespace h2o
