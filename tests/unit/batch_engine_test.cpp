// Continuous batching (runtime/batch_engine.h, batch_scheduler.h) on the real stories260K
// model: every sequence of a batch must get exactly the tokens it gets alone (generate()),
// whatever joins, finishes or is cancelled around it.
#include "runtime/batch_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "bench/throughput.h"
#include "common/error.h"
#include "eval/perplexity.h"
#include "kv/kv_cache.h"
#include "runtime/batch_scheduler.h"
#include "runtime/generate.h"
#include "test_paths.h"

namespace h2o {
namespace {

std::shared_ptr<const Model> stories() {
  static const std::shared_ptr<const Model> m = Model::load({test::model_path("stories260K-f32.gguf"), ""});
  return m;
}

// Prompts of mixed lengths: the first `words[i]` words of successive story paragraphs.
std::vector<std::string> mixed_prompts(size_t n) {
  std::ifstream in(test::shared_path("data/tinystories-valid.txt"));
  std::vector<std::string> words;
  std::string w;
  while (words.size() < 4000 && in >> w) words.push_back(w);
  const size_t lengths[] = {1, 3, 40, 7, 120, 2, 15, 60, 5, 90, 11, 30, 4, 75, 22, 9, 50, 2, 33, 8};
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t len = lengths[i % std::size(lengths)];
    std::string p;
    for (size_t k = 0; k < len; ++k) p += (k ? " " : "") + words[(at + k) % words.size()];
    at += len + 13;
    out.push_back(p);
  }
  return out;
}

KvSettings kv_for(const std::string& policy, int chunk) {
  KvSettings kv;
  kv.policy = policy;
  if (policy != "full") kv.budget = BudgetSpec{24, false};
  if (policy == "h2o" || policy == "random") kv.recent = BudgetSpec{8, false};
  kv.sinks = 2;
  kv.prefill_chunk = chunk;
  kv.seed = 7;
  return kv;
}

struct Spec {
  std::string prompt;
  int max_tokens = 0;
  bool ignore_eos = false;
  KvSettings kv;
};

struct Outcome {
  std::vector<int32_t> tokens;
  std::string stop_reason;
};

Outcome alone(const Spec& s) {
  GenerateOptions o;
  o.prompt = s.prompt;
  o.n_predict = s.max_tokens;
  o.ignore_eos = s.ignore_eos;
  o.sampling.temperature = 0.0f;
  o.session.kv = s.kv;
  o.session.threads = 1;
  const GenerateResult r = generate(stories(), o);
  return {r.tokens, r.stop_reason};
}

SequenceRequest request(const Spec& s) {
  SequenceRequest r;
  r.prompt = stories()->tokenizer().encode(s.prompt, true);
  r.max_tokens = s.max_tokens;
  r.ignore_eos = s.ignore_eos;
  r.sampling.temperature = 0.0f;
  r.kv = s.kv;
  return r;
}

// Runs the engine until empty, adding specs[i] before step join_step[i].
std::map<uint64_t, Outcome> run_engine(BatchEngine& e, const std::vector<Spec>& specs,
                                       const std::vector<int>& join_step, std::vector<uint64_t>& ids,
                                       int cancel_index = -1, int cancel_step = -1) {
  std::map<uint64_t, Outcome> out;
  ids.assign(specs.size(), 0);
  for (int step = 0;; ++step) {
    for (size_t i = 0; i < specs.size(); ++i) {
      if (join_step[i] == step) ids[i] = e.add(request(specs[i]));
    }
    if (cancel_step == step) e.cancel(ids[static_cast<size_t>(cancel_index)]);
    const bool more_to_join = std::any_of(join_step.begin(), join_step.end(), [&](int j) { return j > step; });
    if (e.empty() && !more_to_join) break;
    for (const SequenceEvent& ev : e.step()) {
      if (ev.token >= 0) out[ev.id].tokens.push_back(ev.token);
      if (ev.finished) out[ev.id].stop_reason = ev.stop_reason;
    }
  }
  return out;
}

class BatchEquality : public ::testing::TestWithParam<std::string> {};

// "policy" or "policy:type:positions".
KvSettings kv_for_param(const std::string& param, int chunk) {
  const size_t a = param.find(':');
  KvSettings kv = kv_for(param.substr(0, a), chunk);
  if (a != std::string::npos) {
    const size_t b = param.find(':', a + 1);
    kv.type = parse_kv_type(param.substr(a + 1, b - a - 1));
    kv.positions = parse_kv_positions(param.substr(b + 1));
  }
  return kv;
}

// Sixteen prompts of mixed lengths and prefill chunks, all joining at step 0, batched on
// `threads` threads (min_parallel_work 0: every parallel path of the step runs, even on
// this tiny model), against each generated alone on one thread.
void expect_batch_matches_alone(const std::string& policy, int threads) {
  const auto prompts = mixed_prompts(16);
  std::vector<Spec> specs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    // Mixed prefill chunks (whole prompt, 7, 16) and lengths; half ignore EOS so they run long.
    const int chunk = i % 3 == 0 ? 0 : (i % 3 == 1 ? 7 : 16);
    specs.push_back({prompts[i], 20 + static_cast<int>(i % 5) * 9, i % 2 == 0, kv_for_param(policy, chunk)});
  }
  BatchOptions bo;
  bo.max_sequences = 16;
  bo.max_step_tokens = 48;  // forces prompts to be spread over steps, interleaved with decoding
  bo.threads = threads;
  if (threads > 1) bo.min_parallel_work = 0;
  BatchEngine engine(stories(), bo);
  std::vector<uint64_t> ids;
  const auto got = run_engine(engine, specs, std::vector<int>(specs.size(), 0), ids);
  for (size_t i = 0; i < specs.size(); ++i) {
    const Outcome want = alone(specs[i]);
    ASSERT_TRUE(got.count(ids[i])) << i;
    EXPECT_EQ(got.at(ids[i]).tokens, want.tokens) << policy << " sequence " << i << ", " << threads << " threads";
    EXPECT_EQ(got.at(ids[i]).stop_reason, want.stop_reason) << policy << " sequence " << i;
  }
  EXPECT_TRUE(engine.empty());
  EXPECT_EQ(engine.stats().kv_bytes, 0u);
}

TEST_P(BatchEquality, SixteenMixedPromptsMatchGeneratingAlone) { expect_batch_matches_alone(GetParam(), 1); }

// The step's work spread over threads (positions and appends per sequence, attention per
// sequence and KV head claimed costliest first, eviction per sequence, norms, activations,
// activation quantisation, sampling): the same tokens.
TEST_P(BatchEquality, OnThreeThreadsEveryParallelPathGivesTheSameTokens) { expect_batch_matches_alone(GetParam(), 3); }

INSTANTIATE_TEST_SUITE_P(EveryPolicy, BatchEquality,
                         ::testing::Values("full", "window", "sink", "h2o", "tova", "random"));
// Storage types and cache positions, per request: the same tokens as alone too.
INSTANTIATE_TEST_SUITE_P(KvModes, BatchEquality,
                         ::testing::Values("full:q8:cache", "window:f16:cache", "sink:q8:cache", "h2o:q8:absolute",
                                           "h2o:f16:cache", "tova:q8:cache", "random:f16:absolute"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           for (char& c : n) c = c == ':' ? '_' : c;
                           return n;
                         });

// Prompt logprobs (what /v1/completions echo returns) are minus the per-token NLL that
// perplexity() gives the same tokens as one window under the same KV settings, while the
// sequence shares its steps with others; the sampled tokens are unchanged and each carries
// its own logprob and alternatives.
TEST_P(BatchEquality, PromptLogprobsEqualPerplexityPerToken) {
  const std::string policy = GetParam();
  const auto prompts = mixed_prompts(6);
  BatchOptions bo;
  bo.max_sequences = 8;
  bo.max_step_tokens = 48;
  BatchEngine engine(stories(), bo);
  std::vector<uint64_t> ids;
  std::vector<SequenceRequest> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int chunk = i % 3 == 0 ? 0 : (i % 3 == 1 ? 1 : 5);
    SequenceRequest r = request({prompts[i] + " and then", 4, true, kv_for_param(policy, chunk)});
    r.kv.budget = r.kv.budget ? std::optional(BudgetSpec{50, true}) : std::nullopt;  // a percentage, as evals use
    r.kv.recent.reset();
    r.logprobs = i % 2 ? 3 : 0;
    r.prompt_logprobs = i != 4;  // one sequence without: its neighbours must not care
    reqs.push_back(r);
    ids.push_back(engine.add(r));
  }
  std::map<uint64_t, std::vector<SequenceEvent>> events;
  while (!engine.empty()) {
    for (SequenceEvent& e : engine.step()) events[e.id].push_back(std::move(e));
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    const SequenceRequest& r = reqs[i];
    const std::vector<SequenceEvent>& ev = events[ids[i]];
    ASSERT_FALSE(ev.empty());
    if (!r.prompt_logprobs) {
      EXPECT_TRUE(ev[0].prompt_logprobs.empty());
      continue;
    }
    // perplexity() scores a window of exactly the prompt; percentages resolve against the
    // window there and against prompt + max_tokens here, so the budget is given as resolved.
    PerplexityOptions po;
    po.ctx = static_cast<int>(r.prompt.size());
    po.session.kv = r.kv;
    if (po.session.kv.budget) {
      const KvResolved k = resolve_kv(r.kv, static_cast<int>(r.prompt.size()) + r.max_tokens);
      po.session.kv.budget = BudgetSpec{static_cast<double>(k.budget), false};
      if (r.kv.policy == "h2o" || r.kv.policy == "random")
        po.session.kv.recent = BudgetSpec{static_cast<double>(k.recent), false};
    }
    po.session.threads = 1;
    const std::vector<int32_t> text(r.prompt.begin() + 1, r.prompt.end());  // perplexity adds the BOS
    const PerplexityResult pr = perplexity(stories(), text, po);
    const std::vector<TokenLogprob>& lp = ev[0].prompt_logprobs;
    ASSERT_EQ(lp.size(), r.prompt.size()) << policy << " " << i;
    ASSERT_EQ(pr.nll.size(), r.prompt.size() - 1);
    EXPECT_FALSE(lp[0].scored);
    for (size_t t = 1; t < lp.size(); ++t) {
      EXPECT_EQ(lp[t].token, r.prompt[t]);
      EXPECT_NEAR(lp[t].logprob, -pr.nll[t - 1], 1e-4) << policy << " sequence " << i << " token " << t;
      EXPECT_EQ(lp[t].top.size(), static_cast<size_t>(r.logprobs));
    }
    // Every generated token: its logprob, and alternatives that include it (greedy: first).
    for (const SequenceEvent& e : ev) {
      if (e.token < 0) continue;
      ASSERT_TRUE(e.logprob) << policy;
      EXPECT_EQ(e.logprob->token, e.token);
      if (r.logprobs > 0) {
        EXPECT_EQ(e.logprob->top[0].first, e.token);
        EXPECT_DOUBLE_EQ(e.logprob->top[0].second, e.logprob->logprob);
      }
    }
  }
  // The sequences' tokens are those they get without logprobs.
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int32_t> got;
    for (const SequenceEvent& e : events[ids[i]])
      if (e.token >= 0) got.push_back(e.token);
    BatchEngine plain(stories(), bo);
    SequenceRequest r = reqs[i];
    r.logprobs = -1;
    r.prompt_logprobs = false;
    const uint64_t id = plain.add(r);
    std::vector<int32_t> want;
    while (!plain.empty())
      for (const SequenceEvent& e : plain.step())
        if (e.id == id && e.token >= 0) want.push_back(e.token);
    EXPECT_EQ(got, want) << policy << " sequence " << i;
  }
}

// Admission counts what is kept (bench/throughput.h, KvPlan): a decoding bounded cache
// holds B + 1 slots, and only the sequences prefilling in a step hold their chunk's slots
// (kept between the chunks of one prompt, given back after the last), so the live caches
// never exceed n x (B + 1) plus one step's chunk scratch, and once every sequence decodes
// they hold n x (B + 1).
TEST(BatchEngine, BoundedCachesHoldChunkSlotsOnlyWhilePrefilling) {
  const auto prompts = mixed_prompts(12);
  BatchOptions bo;
  bo.max_sequences = 6;
  bo.max_step_tokens = 32;
  BatchEngine engine(stories(), bo);
  KvSettings kv = kv_for("h2o", 16);
  kv.type = KvType::Q8;
  const KvResolved resolved = resolve_kv(kv, 0);
  const ModelConfig& cfg = stories()->config();
  const KvPlan plan = plan_kv(cfg, resolved, 120, 30, 16, bo.max_step_tokens);
  EXPECT_EQ(plan.steady, KvCache::bytes_for(cfg.attention_shape(), resolved, resolved.budget + 1));
  EXPECT_EQ(plan.scratch_bytes(6), 31 * plan.slot_bytes);  // 32 prefill tokens in a step, less the first "+1"
  EXPECT_EQ(plan.scratch_bytes(1), 15 * plan.slot_bytes);  // one sequence prefills 16 at most
  size_t next = 0, steps_with_prefill = 0;
  while (next < prompts.size() || !engine.empty()) {
    while (next < prompts.size() && !engine.full()) {
      Spec s{prompts[next++], 30, true, kv};
      engine.add(request(s));
    }
    const BatchStats before = engine.stats();
    engine.step();
    if (before.decoding < before.sequences) ++steps_with_prefill;
    EXPECT_LE(engine.stats().kv_bytes_in_step, plan.batch_bytes(before.sequences));
    const BatchStats after = engine.stats();
    EXPECT_LE(after.kv_bytes, plan.batch_bytes(after.sequences));
    if (after.decoding == after.sequences) {
      EXPECT_LE(after.kv_bytes, static_cast<size_t>(after.sequences) * plan.steady);
    }
  }
  EXPECT_GT(steps_with_prefill, 5u);
}

TEST(BatchEngine, SequencesJoinAndFinishAtDifferentSteps) {
  const auto prompts = mixed_prompts(8);
  std::vector<Spec> specs;
  std::vector<int> joins;
  for (size_t i = 0; i < prompts.size(); ++i) {
    specs.push_back({prompts[i], 5 + static_cast<int>(i) * 6, true, kv_for(i % 2 ? "h2o" : "window", 8)});
    joins.push_back(static_cast<int>(i) * 4);  // one joins every 4 steps, while others decode
  }
  BatchOptions bo;
  bo.max_sequences = 8;
  bo.max_step_tokens = 16;
  BatchEngine engine(stories(), bo);
  std::vector<uint64_t> ids;
  const auto got = run_engine(engine, specs, joins, ids);
  for (size_t i = 0; i < specs.size(); ++i) {
    const Outcome want = alone(specs[i]);
    EXPECT_EQ(got.at(ids[i]).tokens, want.tokens) << i;
    EXPECT_EQ(got.at(ids[i]).tokens.size(), static_cast<size_t>(specs[i].max_tokens)) << i;
    EXPECT_EQ(got.at(ids[i]).stop_reason, "length");
  }
}

TEST(BatchEngine, CancellingOneSequenceFreesItsCacheAndLeavesTheOthersAlone) {
  const auto prompts = mixed_prompts(4);
  std::vector<Spec> specs;
  for (const auto& p : prompts) specs.push_back({p, 40, true, kv_for("h2o", 0)});
  BatchEngine engine(stories(), BatchOptions{});
  std::vector<uint64_t> ids(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) ids[i] = engine.add(request(specs[i]));
  std::map<uint64_t, Outcome> got;
  for (int step = 0; step < 10; ++step) {
    for (const SequenceEvent& ev : engine.step()) got[ev.id].tokens.push_back(ev.token);
  }
  const size_t before = engine.stats().kv_bytes;
  const size_t victim = engine.kv_bytes(ids[2]);
  ASSERT_GT(victim, 0u);
  engine.cancel(ids[2]);
  EXPECT_EQ(engine.stats().kv_bytes, before - victim);
  EXPECT_EQ(engine.stats().sequences, 3);
  EXPECT_EQ(engine.kv_bytes(ids[2]), 0u);
  while (!engine.empty()) {
    for (const SequenceEvent& ev : engine.step()) {
      EXPECT_NE(ev.id, ids[2]);
      if (ev.token >= 0) got[ev.id].tokens.push_back(ev.token);
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i == 2) {
      EXPECT_EQ(got[ids[i]].tokens.size(), 10u);
      continue;
    }
    EXPECT_EQ(got[ids[i]].tokens, alone(specs[i]).tokens) << i;
  }
}

TEST(BatchEngine, PromptLongerThanTheContextFailsClearlyAndTheOthersComplete) {
  const int ctx = stories()->config().context_length;
  std::string long_prompt;
  for (int i = 0; i < ctx; ++i) long_prompt += "Lily went to the park. ";
  BatchEngine engine(stories(), BatchOptions{});
  const auto prompts = mixed_prompts(3);
  std::vector<uint64_t> ids;
  ids.push_back(engine.add(request({prompts[0], 12, true, kv_for("h2o", 0)})));
  try {
    engine.add(request({long_prompt, 12, true, kv_for("h2o", 0)}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than the model's context length 512"), std::string::npos) << e.what();
  }
  ids.push_back(engine.add(request({prompts[1], 12, true, kv_for("h2o", 0)})));
  std::map<uint64_t, int> counts;
  while (!engine.empty()) {
    for (const SequenceEvent& ev : engine.step()) counts[ev.id] += ev.token >= 0;
  }
  EXPECT_EQ(counts[ids[0]], 12);
  EXPECT_EQ(counts[ids[1]], 12);
}

TEST(BatchEngine, SequenceAtTheContextEndStopsWithContext) {
  const int ctx = stories()->config().context_length;
  BatchEngine engine(stories(), BatchOptions{});
  SequenceRequest r;
  r.prompt.assign(static_cast<size_t>(ctx - 3), 100);
  r.prompt[0] = *stories()->tokenizer().bos_id();
  r.max_tokens = 50;
  r.ignore_eos = true;
  r.sampling.temperature = 0.0f;
  r.kv = kv_for("window", 64);
  const uint64_t id = engine.add(r);
  int n = 0;
  std::string reason;
  while (!engine.empty()) {
    for (const SequenceEvent& ev : engine.step()) {
      EXPECT_EQ(ev.id, id);
      n += ev.token >= 0;
      if (ev.finished) reason = ev.stop_reason;
    }
  }
  EXPECT_EQ(n, 4);  // ctx - 3 prompt tokens, then 3 fed + 1 sampled at the end
  EXPECT_EQ(reason, "context");
}

TEST(BatchEngine, BadRequestsAndLimitsAreRefusedWithClearErrors) {
  BatchOptions bo;
  bo.max_sequences = 1;
  BatchEngine engine(stories(), bo);
  SequenceRequest r = request({"Once upon a time", 4, false, kv_for("h2o", 0)});
  SequenceRequest empty = r;
  empty.prompt.clear();
  EXPECT_THROW(engine.add(empty), Error);
  SequenceRequest bad_token = r;
  bad_token.prompt.push_back(100000);
  EXPECT_THROW(engine.add(bad_token), Error);
  SequenceRequest bad_kv = r;
  bad_kv.kv.policy = "nope";
  EXPECT_THROW(engine.add(bad_kv), Error);
  SequenceRequest neg = r;
  neg.max_tokens = -1;
  EXPECT_THROW(engine.add(neg), Error);
  engine.add(r);
  EXPECT_THROW(engine.add(r), BusyError);
}

TEST(BatchEngine, BoundedCachesShrinkToBudgetAfterThePrompt) {
  BatchEngine engine(stories(), BatchOptions{});
  const auto prompts = mixed_prompts(5);
  const uint64_t id = engine.add(request({prompts[4], 30, true, kv_for("h2o", 0)}));  // 120-word prompt
  engine.step();  // the whole prompt in one step, then one token sampled
  const KvResolved kv = engine.kv_settings(id);
  EXPECT_EQ(engine.kv_bytes(id), KvCache::bytes_for(stories()->config().attention_shape(), kv, kv.budget + 1));
  EXPECT_GT(engine.kv_bytes_peak(id), engine.kv_bytes(id));
  for (int i = 0; i < 10; ++i) engine.step();
  EXPECT_EQ(engine.kv_bytes(id), KvCache::bytes_for(stories()->config().attention_shape(), kv, kv.budget + 1));
}

// The scheduler: many threads submit; requests queue beyond the sequence limit; all finish
// with the tokens they get alone; cancel and shutdown work from other threads.
TEST(BatchScheduler, ConcurrentSubmissionsQueueAndMatchGeneratingAlone) {
  SchedulerOptions so;
  so.batch.max_sequences = 4;
  so.max_queue = 32;
  BatchScheduler sched(stories(), so);
  const auto prompts = mixed_prompts(12);
  std::vector<Spec> specs;
  for (size_t i = 0; i < prompts.size(); ++i)
    specs.push_back({prompts[i], 10 + static_cast<int>(i), false, kv_for(i % 2 ? "tova" : "h2o", 0)});
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Outcome> got;
  int finished = 0;
  std::vector<uint64_t> ids;
  for (const Spec& s : specs) {
    ids.push_back(sched.submit(request(s), [&](const SequenceEvent& ev) {
      std::lock_guard lock(mu);
      if (ev.token >= 0) got[ev.id].tokens.push_back(ev.token);
      if (ev.finished) {
        got[ev.id].stop_reason = ev.stop_reason;
        ++finished;
        cv.notify_all();
      }
    }));
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(
        cv.wait_for(lock, std::chrono::seconds(120), [&] { return finished == static_cast<int>(specs.size()); }));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const Outcome want = alone(specs[i]);
    EXPECT_EQ(got[ids[i]].tokens, want.tokens) << i;
    EXPECT_EQ(got[ids[i]].stop_reason, want.stop_reason) << i;
  }
  const SchedulerStats st = sched.stats();
  EXPECT_EQ(st.submitted, specs.size());
  EXPECT_EQ(st.completed, specs.size());
  EXPECT_EQ(st.queued, 0);
  EXPECT_EQ(st.engine.kv_bytes, 0u);
}

TEST(BatchScheduler, CancelQueueLimitAndShutdown) {
  // books4M: ~20x the work per token of stories260K, so the long request is surely still
  // running when it is cancelled, even on a loaded machine or under sanitizers.
  static const std::shared_ptr<const Model> books = Model::load({test::model_path("books4M-f32.gguf"), ""});
  const auto req = [&](const std::string& text, int max_tokens, const std::string& policy) {
    SequenceRequest r;
    r.prompt = books->tokenizer().encode(text, true);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    r.kv = kv_for(policy, 0);
    return r;
  };
  SchedulerOptions so;
  so.batch.max_sequences = 1;
  so.max_queue = 1;
  BatchScheduler sched(books, so);
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::string> reasons;
  std::map<uint64_t, int> tokens;
  auto cb = [&](const SequenceEvent& ev) {
    std::lock_guard lock(mu);
    tokens[ev.id] += ev.token >= 0;
    if (ev.finished) reasons[ev.id] = ev.stop_reason;
    cv.notify_all();
  };
  const uint64_t a = sched.submit(req("It was a bright cold day", 480, "h2o"), cb);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return tokens[a] > 0; }));
  }
  const uint64_t b = sched.submit(req("The house stood", 5, "window"), cb);  // queued behind a
  EXPECT_THROW(sched.submit(req("She said", 5, "window"), cb), BusyError);
  EXPECT_THROW(sched.submit(req("", 5, "nope"), cb), Error);
  sched.cancel(a);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return reasons.count(a) && reasons.count(b); }));
  }
  EXPECT_EQ(reasons[a], "cancelled");
  EXPECT_LT(tokens[a], 480);
  EXPECT_EQ(reasons[b], "length");
  EXPECT_EQ(tokens[b], 5);
  // Shutdown without finishing cancels what runs; later submissions are refused.
  const uint64_t c = sched.submit(req("It was a bright cold day", 480, "full"), cb);
  sched.shutdown(false);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(reasons[c], "cancelled");
  }
  EXPECT_THROW(sched.submit(req("She said", 5, "window"), cb), BusyError);
}

}  // namespace
}  // namespace h2o
