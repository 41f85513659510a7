// Attention analysis: the streaming statistics equal a naive recomputation from the whole
// attention matrix, and a real model's analysis is well-formed (sparsity in [0, 1],
// accumulated scores summing to the row count, heavy hitters that are real tokens).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "common/error.h"
#include "eval/analyze.h"
#include "integration/run_cli.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

// A synthetic causal attention tensor P[l][h][q][k] (k <= q), rows softmaxed from random
// logits, some of them peaked so that sparsity is neither 0 nor 1.
struct Synthetic {
  int L, H, N;
  std::vector<double> p;  // [L][H][N][N]
  double at(int l, int h, int q, int k) const {
    return p[((static_cast<size_t>(l) * H + h) * N + q) * N + k];
  }
};

Synthetic make_synthetic(int L, int H, int N, uint32_t seed) {
  Synthetic s{L, H, N, std::vector<double>(static_cast<size_t>(L) * H * N * N, 0.0)};
  std::mt19937 rng(seed);
  std::normal_distribution<float> z(0.0f, 2.5f);
  for (int l = 0; l < L; ++l) {
    for (int h = 0; h < H; ++h) {
      for (int q = 0; q < N; ++q) {
        std::vector<float> logit(static_cast<size_t>(q) + 1);
        for (auto& v : logit) v = z(rng);
        const float mx = *std::max_element(logit.begin(), logit.end());
        double sum = 0;
        for (auto& v : logit) sum += std::exp(static_cast<double>(v - mx));
        for (int k = 0; k <= q; ++k)
          s.p[((static_cast<size_t>(l) * H + h) * N + q) * N + k] =
              static_cast<double>(static_cast<float>(std::exp(static_cast<double>(logit[static_cast<size_t>(k)] - mx)) / sum));
      }
    }
  }
  return s;
}

// Feeds the synthetic rows as a full-cache session would (keys in position order).
void feed(const Synthetic& s, AttentionStats& st) {
  std::vector<int32_t> pos(static_cast<size_t>(s.N));
  std::iota(pos.begin(), pos.end(), 0);
  std::vector<float> row(static_cast<size_t>(s.N));
  for (int l = 0; l < s.L; ++l) {
    for (int h = 0; h < s.H; ++h) {
      for (int q = 0; q < s.N; ++q) {
        for (int k = 0; k <= q; ++k) row[static_cast<size_t>(k)] = static_cast<float>(s.at(l, h, q, k));
        st.observe(AttentionRow{l, h, h / 2, q, pos.data(), row.data(), q + 1});
      }
    }
  }
}

// Naive top-k: a full sort by (score desc, position desc).
std::vector<int32_t> naive_top_k(const std::vector<double>& score, int n, int k) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return score[static_cast<size_t>(a)] != score[static_cast<size_t>(b)] ? score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]
                                                                         : a > b;
  });
  order.resize(static_cast<size_t>(std::min(n, k)));
  return order;
}

TEST(Analyze, StreamingStatsEqualNaiveRecomputation) {
  const int L = 2, H = 3, N = 24, K = 5;
  const Synthetic s = make_synthetic(L, H, N, 7);
  AttentionStats st(L, H, N, K, 0.01);
  feed(s, st);
  for (int l = 0; l < L; ++l) {
    for (int h = 0; h < H; ++h) {
      // (a) sparsity over the causal part only.
      int64_t below = 0, entries = 0;
      for (int q = 0; q < N; ++q) {
        double mx = 0;
        for (int k = 0; k <= q; ++k) mx = std::max(mx, s.at(l, h, q, k));
        for (int k = 0; k <= q; ++k) below += s.at(l, h, q, k) < 0.01 * mx;
        entries += q + 1;
      }
      const double sp = st.sparsity(l, h);
      EXPECT_GE(sp, 0.0);
      EXPECT_LE(sp, 1.0);
      EXPECT_DOUBLE_EQ(sp, static_cast<double>(below) / static_cast<double>(entries));
      EXPECT_GT(sp, 0.0);  // the random rows are peaked enough to have small entries
      // (b) accumulated scores: column sums; they total the number of rows.
      const auto acc = st.accumulated(l, h);
      double total = 0;
      std::vector<double> prefix(static_cast<size_t>(N), 0.0);
      for (int k = 0; k < N; ++k) {
        double col = 0;
        for (int q = k; q < N; ++q) col += s.at(l, h, q, k);
        EXPECT_NEAR(acc[static_cast<size_t>(k)], col, 1e-12);
        total += acc[static_cast<size_t>(k)];
      }
      EXPECT_NEAR(total, N, 1e-5);
      EXPECT_EQ(st.rows(l, h), N);
      // (c) heavy hitters.
      std::vector<double> full(acc.begin(), acc.end());
      EXPECT_EQ(st.heavy_hitters(l, h), naive_top_k(full, N, K));
      // (d) consecutive steps: top-k of the prefix sums after row t-1 vs after row t.
      const auto so = st.step_overlap(l, h);
      std::vector<int32_t> prev;
      for (int t = 0; t < N; ++t) {
        for (int k = 0; k <= t; ++k) prefix[static_cast<size_t>(k)] += s.at(l, h, t, k);
        const auto cur = naive_top_k(prefix, t + 1, K);
        if (t < K) {
          EXPECT_TRUE(std::isnan(so[static_cast<size_t>(t)])) << t;
        } else {
          EXPECT_NEAR(so[static_cast<size_t>(t)], jaccard(prev, cur), 1e-12) << t;
        }
        prev = cur;
      }
    }
  }
}

TEST(Analyze, JaccardTopKAndPowerLawFit) {
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3}, {3, 2, 1}), 1.0);
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3}, {3, 4}), 0.25);
  EXPECT_DOUBLE_EQ(jaccard({}, {}), 1.0);
  EXPECT_DOUBLE_EQ(jaccard({1}, {}), 0.0);
  const std::vector<double> sc = {0.5, 2.0, 2.0, 1.0};
  EXPECT_EQ(top_k_positions(sc, 2), (std::vector<int32_t>{2, 1}));  // tie: later position first
  EXPECT_EQ(top_k_positions(sc, 9).size(), 4u);
  // An exact power law is fitted exactly.
  std::vector<double> pl;
  for (int r = 1; r <= 100; ++r) pl.push_back(3.0 * std::pow(r, -0.8));
  const PowerLawFit f = fit_power_law(pl);
  EXPECT_NEAR(f.slope, -0.8, 1e-9);
  EXPECT_NEAR(f.intercept, std::log10(3.0), 1e-9);
  EXPECT_NEAR(f.r2, 1.0, 1e-9);
  EXPECT_EQ(fit_power_law(pl, 10).points, 10);
}

TEST(Analyze, RejectsRowsOutOfOrderOrNotCausal) {
  AttentionStats st(1, 1, 4, 2);
  std::vector<int32_t> pos = {0, 1, 2};
  std::vector<float> p = {0.2f, 0.3f, 0.5f};
  st.observe(AttentionRow{0, 0, 0, 2, pos.data(), p.data(), 3});
  EXPECT_THROW(st.observe(AttentionRow{0, 0, 0, 1, pos.data(), p.data(), 2}), Error);  // goes back
  EXPECT_THROW(st.observe(AttentionRow{0, 0, 0, 3, pos.data(), p.data(), 0}), Error);  // no keys
  std::vector<int32_t> future = {0, 5};
  AttentionStats st2(1, 1, 8, 2);
  EXPECT_THROW(st2.observe(AttentionRow{0, 0, 0, 1, future.data(), p.data(), 2}), Error);
  EXPECT_THROW(st2.observe(AttentionRow{1, 0, 0, 1, pos.data(), p.data(), 2}), Error);  // no layer 1
  EXPECT_THROW(AttentionStats(1, 1, 4, 5), Error);  // k beyond the tokens
}

std::vector<int32_t> story_tokens(const Model& m, size_t n) {
  auto t = m.tokenizer().encode(read_text_file(shared_path("data/tinystories-valid.txt")), false);
  t.resize(n);
  return t;
}

TEST(Analyze, RealModelReportIsWellFormed) {
  auto model = Model::load({model_path("stories260K-f32.gguf"), ""});
  const auto text = story_tokens(*model, 120);
  AnalyzeOptions o;
  o.top_k = 12;
  const AnalysisReport r = analyze_attention(model, text, o);
  const ModelConfig& c = model->config();
  ASSERT_EQ(r.n_tokens, 121);  // BOS + 120
  ASSERT_EQ(r.n_layers, c.n_layers);
  ASSERT_EQ(r.n_heads, c.n_heads);
  for (double v : r.sparsity) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  for (double v : r.hh_share) {
    EXPECT_GT(v, 0.0);
    EXPECT_LE(v, 1.0 + 1e-9);
  }
  // Every head's scores sum to its row count, so the rank-wise mean does too.
  EXPECT_NEAR(std::accumulate(r.rank_scores_all.begin(), r.rank_scores_all.end(), 0.0), r.n_tokens, 1e-3);
  EXPECT_TRUE(std::is_sorted(r.rank_scores_all.rbegin(), r.rank_scores_all.rend()));
  EXPECT_LT(r.fit_all.slope, 0.0);
  // Heavy hitters name real tokens of the text; every (head, slot) hit is counted once.
  int64_t hits = 0;
  double share = 0;
  ASSERT_FALSE(r.heavy_tokens.empty());
  for (const HeavyToken& t : r.heavy_tokens) {
    EXPECT_EQ(t.piece, model->tokenizer().piece(t.id));
    EXPECT_TRUE(std::find(r.tokens.begin(), r.tokens.end(), t.id) != r.tokens.end()) << t.piece;
    EXPECT_GE(t.occurrences, 1);
    EXPECT_GE(t.heads, 1);
    EXPECT_LE(t.heads, r.n_layers * r.n_heads);
    hits += t.hits;
    share += t.share;
  }
  EXPECT_EQ(hits, static_cast<int64_t>(r.n_layers) * r.n_heads * r.top_k);
  EXPECT_NEAR(share, r.hh_share_avg, 1e-9);  // every head has the same row count
  for (double v : r.head_overlap_layer) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  EXPECT_GT(r.step_overlap_avg, 0.0);
  EXPECT_LE(r.step_overlap_avg, 1.0);
  const std::string summary = format_summary(r);
  EXPECT_NE(summary.find("(a) Attention sparsity"), std::string::npos);
  EXPECT_NE(summary.find(display_piece(r.heavy_tokens[0].piece)), std::string::npos);
}

TEST(Analyze, PerTokenAndWholePromptPrefillSeeTheSameRows) {
  auto model = Model::load({model_path("stories260K-f32.gguf"), ""});
  const auto text = story_tokens(*model, 60);
  AnalyzeOptions whole, per_token;
  whole.top_k = per_token.top_k = 6;
  per_token.prefill_chunk = 1;
  const AnalysisReport a = analyze_attention(model, text, whole);
  const AnalysisReport b = analyze_attention(model, text, per_token);
  ASSERT_EQ(a.sparsity.size(), b.sparsity.size());
  for (size_t i = 0; i < a.sparsity.size(); ++i) EXPECT_NEAR(a.sparsity[i], b.sparsity[i], 0.01) << i;
  for (size_t i = 0; i < a.rank_scores_all.size(); ++i) EXPECT_NEAR(a.rank_scores_all[i], b.rank_scores_all[i], 1e-3);
}

TEST(Analyze, WritesTablesAndFigures) {
  auto model = Model::load({model_path("stories260K-f32.gguf"), ""});
  AnalysisReport r = analyze_attention(model, story_tokens(*model, 80), {});
  r.model = "stories260K";
  const std::string dir = ::testing::TempDir() + "h2o_analyze_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const auto written = write_analysis(r, dir);
  for (const char* f : {"analysis.json", "sparsity.csv", "accumulated-scores.csv", "heavy-hitters.csv",
                        "overlap-steps.csv", "overlap-heads.csv"})
    EXPECT_FALSE(read_text_file(dir + "/" + f).empty()) << f;
  for (const char* fig : {"attention-sparsity", "accumulated-scores", "overlap-steps", "overlap-heads"}) {
    EXPECT_NE(read_text_file(dir + "/" + fig + ".svg").find("<svg"), std::string::npos) << fig;
    EXPECT_EQ(read_text_file(dir + "/" + fig + ".png").substr(0, 4), "\x89PNG") << fig;
  }
  const auto j = nlohmann::json::parse(read_text_file(dir + "/analysis.json"));
  EXPECT_EQ(j["n_tokens"], 81);
  EXPECT_EQ(j["layers"].size(), static_cast<size_t>(r.n_layers));
  // sparsity.csv: a header and one line per (layer, head).
  const std::string csv = read_text_file(dir + "/sparsity.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + r.n_layers * r.n_heads);
}

TEST(AnalyzeCli, PrintsTablesAndJson) {
  const std::string dir = ::testing::TempDir() + "h2o_analyze_cli_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const auto r = run_cli({"analyze", "-m", model_path("stories260K-f32.gguf"), "-f",
                          shared_path("data/tinystories-valid.txt"), "--tokens", "100", "--out-dir", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"(a) Attention sparsity", "(b) Accumulated attention", "(c) Heavy hitters", "(d) Overlap"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  EXPECT_TRUE(std::filesystem::exists(dir + "/attention-sparsity.png"));
  const auto j = run_cli({"analyze", "-m", model_path("stories260K-f32.gguf"), "-f",
                          shared_path("data/tinystories-valid.txt"), "--tokens", "50", "--top-k", "5", "--json",
                          "--no-plots", "--out-dir", dir + "/j"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto js = nlohmann::json::parse(j.out);
  EXPECT_EQ(js["n_tokens"], 51);
  EXPECT_EQ(js["top_k"], 5);
  EXPECT_FALSE(std::filesystem::exists(dir + "/j/attention-sparsity.svg"));
  // --top-k beyond the tokens is a one-line error.
  const auto bad = run_cli({"analyze", "-m", model_path("stories260K-f32.gguf"), "-f",
                            shared_path("data/tinystories-valid.txt"), "--tokens", "10", "--top-k", "50", "--out-dir",
                            dir + "/bad"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--top-k"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace h2o::test
