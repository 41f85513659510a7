// Position modes and storage types beyond the policy grid (kv_policy_test.cpp):
// `cache` positions under `full` are absolute positions bit for bit; the rank order a
// cache keeps is its slots by position; KV bytes come from the stored type; a bounded
// cache streams past the trained context and still matches the naive reference; models
// without rotary embeddings refuse `cache` positions by name.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "attention/layer_step.h"
#include "common/error.h"
#include "kv/kv_cache.h"
#include "kv/kv_config.h"
#include "reference/naive_llama.h"
#include "reference/ref_test_util.h"

namespace h2o {
namespace {

SessionOptions options(const std::string& policy, int budget, int chunk, KvPositions positions,
                       KvType type = KvType::F32) {
  SessionOptions o;
  o.threads = 1;
  o.kv.policy = policy;
  if (policy != "full") o.kv.budget = BudgetSpec{static_cast<double>(budget), false};
  if (policy == "h2o" || policy == "random") o.kv.recent = BudgetSpec{static_cast<double>(budget / 2), false};
  o.kv.sinks = 4;
  o.kv.seed = 3;
  o.kv.prefill_chunk = chunk;
  o.kv.positions = positions;
  o.kv.type = type;
  return o;
}

// Under `full` every rank is the token's position: the keys are rotated by the same angles
// (RankRotations takes RopeTable::angles) with the same products and sums, and attention
// visits the slots in the same order. So the logits are the same bits. (Not so in f16 / q8:
// there `cache` rounds the key before its rotation, `absolute` after it.)
TEST(KvModes, CachePositionsUnderFullAreAbsolutePositionsBitForBit) {
  auto model = test::stories_bin();
  const auto tokens = test::text_tokens(*model, 300);
  for (KvType type : {KvType::F32}) {
    for (int chunk : {1, 7, 0}) {
      Session a(model, options("full", 0, chunk, KvPositions::Absolute, type));
      Session c(model, options("full", 0, chunk, KvPositions::Cache, type));
      const auto la = test::feed_all(a, tokens, {static_cast<int>(tokens.size())});
      const auto lc = test::feed_all(c, tokens, {static_cast<int>(tokens.size())});
      ASSERT_EQ(la.size(), lc.size());
      EXPECT_EQ(std::memcmp(la.data(), lc.data(), la.size() * sizeof(float)), 0)
          << kv_type_name(type) << " chunk " << chunk;
    }
  }
}

// Under `full` a prompt's rows see the same slots in the same order whatever the chunk,
// and each row's attention is the same arithmetic whether it runs alone (chunk 1) or with
// the rows beside it through the multi-query kernels (f16 / q8: kv_kernels.h): the logits
// are the same bits for every chunk and type.
TEST(KvModes, ChunkedPrefillIsOneTokenStepsBitForBitInEveryType) {
  auto model = test::stories_bin();
  const auto tokens = test::text_tokens(*model, 150);
  for (KvType type : {KvType::F32, KvType::F16, KvType::Q8}) {
    Session one(model, options("full", 0, 1, KvPositions::Absolute, type));
    const auto want = test::feed_all(one, tokens, {static_cast<int>(tokens.size())});
    for (int chunk : {2, 3, 7, 0}) {
      Session s(model, options("full", 0, chunk, KvPositions::Absolute, type));
      const auto got = test::feed_all(s, tokens, {static_cast<int>(tokens.size())});
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << kv_type_name(type) << " chunk " << chunk;
    }
  }
}

// The rank order: every live slot once, by ascending position, after every step, while
// eviction moves slots around.
TEST(KvModes, RankOrderListsTheLiveSlotsByPosition) {
  auto model = test::stories_bin();
  const auto tokens = test::text_tokens(*model, 200);
  const auto& cfg = model->config();
  for (const std::string policy : {"window", "sink", "h2o", "tova", "random"}) {
    for (int chunk : {1, 5}) {
      Session s(model, options(policy, 24, chunk, KvPositions::Cache, KvType::Q8));
      for (size_t at = 0; at < tokens.size(); at += 10) {
        s.feed(std::span<const int32_t>(tokens.data() + at, std::min<size_t>(10, tokens.size() - at)));
        const KvCache& kv = s.kv_cache();
        for (int l = 0; l < cfg.n_layers; ++l) {
          for (int h = 0; h < cfg.n_kv_heads; ++h) {
            const uint32_t* order = kv.order(l, h);
            ASSERT_NE(order, nullptr);
            std::vector<int> seen(static_cast<size_t>(kv.n_slots(l)), 0);
            for (int r = 0; r < kv.n_slots(l); ++r) {
              ASSERT_LT(order[r], static_cast<uint32_t>(kv.n_slots(l)));
              ++seen[order[r]];
              if (r > 0) ASSERT_LT(kv.positions(l, h)[order[r - 1]], kv.positions(l, h)[order[r]]) << policy;
            }
            for (int n : seen) ASSERT_EQ(n, 1) << policy << " layer " << l << " head " << h;
          }
        }
      }
    }
  }
  // Absolute positions keep no order.
  Session a(model, options("h2o", 24, 1, KvPositions::Absolute));
  a.feed(std::span<const int32_t>(tokens.data(), 40));
  EXPECT_EQ(a.kv_cache().order(0, 0), nullptr);
}

// Keys + values in the stored type (q8: + one fp16 scale each), positions, scores, the rank
// order under `cache`, and the policy's score scratch; and the target: h2o 20% + q8
// holds at most 1/15 of full f32's bytes on a 2048-token sequence of a head_dim-64 shape.
TEST(KvModes, KvBytesCountTheStoredType) {
  const AttentionShape tiny{2, 4, 2, 64, 4096};  // 2 layers, 2 KV heads, head_dim 64
  KvResolved kv{"window", 100, 0, 0, 0};
  const size_t slots = 2 * 2 * 10;  // per 10 slots per (layer, head)
  EXPECT_EQ(KvCache::bytes_for(tiny, kv, 10), slots * (2 * 64 * 4 + 4 + 4));
  kv.type = KvType::F16;
  EXPECT_EQ(KvCache::bytes_for(tiny, kv, 10), slots * (2 * 64 * 2 + 4 + 4));
  kv.type = KvType::Q8;
  EXPECT_EQ(KvCache::bytes_for(tiny, kv, 10), slots * (2 * (64 + 2) + 4 + 4));
  kv.positions = KvPositions::Cache;
  EXPECT_EQ(KvCache::bytes_for(tiny, kv, 10), slots * (2 * (64 + 2) + 4 + 4 + 4));

  // TinyLlama-1.1B's attention: 22 layers, 32 query / 4 KV heads of 64.
  const AttentionShape tinyllama{22, 32, 4, 64, 2048};
  KvSettings full;
  KvSettings h2o;
  h2o.policy = "h2o";
  h2o.budget = BudgetSpec::parse("20%", "--kv-budget");
  h2o.recent = BudgetSpec::parse("10%", "--kv-recent");
  h2o.type = KvType::Q8;
  const KvResolved rf = resolve_kv(full, 2048), rh = resolve_kv(h2o, 2048);
  const size_t full_bytes = KvCache::bytes_for(tinyllama, rf, 2048);
  const size_t h2o_bytes = KvCache::bytes_for(tinyllama, rh, rh.budget + 1);  // decoding: B + 1 slots
  std::printf("[ kv modes ] 2048 tokens, TinyLlama shape: full f32 %zu bytes, h2o 20%% q8 %zu bytes: 1/%.1f\n",
              full_bytes, h2o_bytes, static_cast<double>(full_bytes) / static_cast<double>(h2o_bytes));
  EXPECT_LE(h2o_bytes * 15, full_bytes);

  // A session reports what it allocated, in its type.
  auto model = test::stories_bin();
  const auto tokens = test::text_tokens(*model, 100);
  size_t last = 0;
  for (KvType type : {KvType::F32, KvType::F16, KvType::Q8}) {
    Session s(model, options("window", 32, 1, KvPositions::Absolute, type));
    s.feed(tokens);
    KvResolved r{"window", 32, 0, 0, 0};
    r.type = type;
    EXPECT_EQ(s.kv_bytes(), KvCache::bytes_for(model->config().attention_shape(), r, 33)) << kv_type_name(type);
    if (last > 0) EXPECT_LT(s.kv_bytes(), last);
    last = s.kv_bytes();
  }
}

// stories260K was trained on 512 positions. A bounded cache streams 700 tokens through it;
// under `cache` positions no rotation exceeds B + T, under `absolute` positions pass 512
// (the model's behaviour there is whatever it is: the reference computes the same). Both
// match the naive reference; `full` refuses to pass the context.
TEST(KvModes, BoundedCachesStreamPastTheTrainedContext) {
  auto model = test::stories_bin();
  const auto& naive = test::naive_model("stories260K.bin");
  const auto tokens = test::text_tokens(*model, 700);
  ASSERT_GT(static_cast<int>(tokens.size()), model->config().context_length);
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  for (const std::string& positions : {"cache", "absolute"}) {
    // Policies whose decisions are exact (positions): nothing to follow through near-ties.
    for (const std::string policy : {"sink", "window"}) {
      const SessionOptions o = options(policy, 32, 1, parse_kv_positions(positions));
      Session s(model, o);
      const auto logits = test::feed_all(s, tokens, {static_cast<int>(tokens.size())});
      const KvResolved kv = resolve_kv(o.kv, 0);
      ref::NaiveKvReference r(naive,
                              ref::NaivePolicy{policy, kv.budget, kv.recent, kv.sinks, kv.seed, positions, "f32"});
      const auto expected = r.run(tokens, ref::chunk_steps(static_cast<int>(tokens.size()), 1));
      const double diff = test::max_abs_diff(test::engine_logprobs(logits, V), expected);
      std::printf("[ kv modes ] %s %s positions, 700 tokens past a 512 context: max |dlogp| = %.3g\n", policy.c_str(),
                  positions.c_str(), diff);
      EXPECT_LE(diff, 1e-4) << policy << " " << positions;
    }
  }
  Session full(model, options("full", 0, 1, KvPositions::Cache));
  EXPECT_THROW(full.feed(tokens), Error);
}

// The grid's tolerance for f16 / q8 (kv_policy_test.cpp, tolerance()) is loose on the
// largest difference because rounding flips reach the far tail. This holds the engine to
// the reduced types themselves: its mean difference from the reference in that type is well
// below what the type does to the reference (so a storage type applied wrongly, or not at
// all, fails here).
TEST(KvModes, ReducedTypesAreHeldCloserThanTheirOwnEffect) {
  auto model = test::stories_bin();
  const auto& naive = test::naive_model("stories260K.bin");
  const auto tokens = test::text_tokens(*model, 200);
  const size_t V = static_cast<size_t>(model->config().vocab_size);
  for (const std::string positions : {"absolute", "cache"}) {
    for (const std::string policy : {"full", "window"}) {
      const auto steps = ref::chunk_steps(static_cast<int>(tokens.size()), policy == "full" ? 0 : 1);
      ref::NaiveKvReference r32(naive, ref::NaivePolicy{policy, 48, 0, 0, 0, positions, "f32"});
      const auto f32 = r32.run(tokens, steps);
      for (const std::string type : {"f16", "q8"}) {
        const SessionOptions o =
            options(policy, 48, policy == "full" ? 0 : 1, parse_kv_positions(positions), parse_kv_type(type));
        Session s(model, o);
        const auto engine = test::engine_logprobs(test::feed_all(s, tokens, {static_cast<int>(tokens.size())}), V);
        ref::NaiveKvReference r(naive, ref::NaivePolicy{policy, 48, 0, 0, 0, positions, type});
        const auto expected = r.run(tokens, steps);
        const double held = test::mean_abs_diff(engine, expected), effect = test::mean_abs_diff(expected, f32);
        std::printf("[ kv modes ] %s %s %s: mean |dlogp| engine vs reference %.3g, %s vs f32 in the reference %.3g\n",
                    policy.c_str(), positions.c_str(), type.c_str(), held, type.c_str(), effect);
        EXPECT_LT(held, 0.5 * effect) << policy << " " << positions << " " << type;
        EXPECT_GT(test::mean_abs_diff(engine, f32), 0.5 * effect) << "the engine did not round to " << type;
      }
    }
  }
}

// No rotary embeddings (OPT's learned positions): nothing to re-index. The settings check
// names the flag and the architecture; the layer step refuses too.
TEST(KvModes, CachePositionsRefusedWithoutRotaryEmbeddings) {
  KvResolved kv{"h2o", 16, 8, 0, 0};
  kv.positions = KvPositions::Cache;
  try {
    check_kv_positions(kv, false, "opt");
    FAIL() << "accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--kv-positions"), std::string::npos) << msg;
    EXPECT_NE(msg.find("opt"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(check_kv_positions(kv, true, "llama"));
  kv.positions = KvPositions::Absolute;
  EXPECT_NO_THROW(check_kv_positions(kv, false, "opt"));

  const AttentionShape shape{1, 2, 1, 8, 64};
  KvResolved cache_kv{"window", 8, 0, 0, 0};
  cache_kv.positions = KvPositions::Cache;
  KvCache cache(shape, cache_kv, 1);
  cache.begin_step(1);
  std::vector<float> q(16, 0.1f), k(8, 0.2f), v(8, 0.3f), out(16);
  const int32_t pos = 0;
  const LayerSegment seg{q.data(), k.data(), v.data(), &pos, 1, &cache, 1, out.data()};
  ThreadPool pool(1);
  LayerAttention step;
  EXPECT_THROW(step.run(shape, RopeTable{}, 0, std::span(&seg, 1), pool), Error);
}

}  // namespace
}  // namespace h2o
