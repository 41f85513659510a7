// Attention analysis behind H2O's design (Zhang et al. 2023, Sections 3.1-3.2): run a text
// through a full-cache session with an attention observer and measure
//   (a) sparsity: per (layer, head), the share of causal attention entries below 1% of
//       their row's maximum (the paper's Figure 1);
//   (b) accumulated attention: per (layer, head), each key's probability summed over all
//       query rows, sorted by rank: a power law on log-log axes (Figure 2), with a fit;
//   (c) heavy hitters: the top-k keys by accumulated score per head, as token strings;
//   (d) overlap: Jaccard similarity of top-k sets between heads of a layer, and between
//       consecutive steps (top-k over rows 0..t-1 vs rows 0..t).
// AttentionStats holds the streaming computation (testable on synthetic rows);
// analyze_attention() runs a model; write_analysis() writes JSON, CSV and figures.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/attention_observer.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace h2o {

// Streaming statistics over attention rows of a sequence of n_tokens positions (0..n-1).
// Rows of one (layer, head) must arrive in increasing q_pos order, each position once, and
// see keys only at positions <= q_pos (what a full-cache Session reports, whatever its
// prefill chunk). Memory: O(layers * heads * n_tokens).
class AttentionStats {
 public:
  // top_k: heavy-hitter set size per head (>= 1). threshold: sparsity cut-off as a
  // fraction of the row maximum (the paper: 0.01).
  AttentionStats(int n_layers, int n_heads, int n_tokens, int top_k, double threshold = 0.01);

  // Throws h2o::Error if a row breaks the order/range contract above.
  void observe(const AttentionRow& row);

  int n_layers() const { return n_layers_; }
  int n_heads() const { return n_heads_; }
  int n_tokens() const { return n_tokens_; }
  int top_k() const { return top_k_; }
  double threshold() const { return threshold_; }
  // Rows seen for (layer, head).
  int64_t rows(int layer, int head) const { return head_at(layer, head).rows; }

  // Share of entries below threshold * row max, over all rows seen: [0, 1].
  double sparsity(int layer, int head) const;
  // [n_tokens]: sum over rows of each key position's probability. Sums to rows().
  std::span<const double> accumulated(int layer, int head) const;
  // The top_k positions by accumulated score (ties: the later position), best first.
  std::vector<int32_t> heavy_hitters(int layer, int head) const;
  // [n_tokens]: at t, the Jaccard overlap of the top-k set after rows 0..t-1 with the set
  // after rows 0..t; NaN where t < top_k (the earlier set still held every key seen).
  std::span<const double> step_overlap(int layer, int head) const;

 private:
  struct Head {
    int64_t rows = 0;
    int64_t entries = 0;
    int64_t below = 0;
    int32_t last_pos = -1;
    std::vector<double> acc;              // [n_tokens]
    std::vector<double> step_overlap;     // [n_tokens]
    std::vector<int32_t> prev_top;        // sorted positions of the previous step's top-k
  };
  // Index of (layer, head) in heads_; throws h2o::Error when out of range.
  size_t slot(int layer, int head) const;
  const Head& head_at(int layer, int head) const { return heads_[slot(layer, head)]; }

  int n_layers_, n_heads_, n_tokens_, top_k_;
  double threshold_;
  std::vector<Head> heads_;  // [layer][head]
};

// Top-k positions of `scores` (first `n` entries) by score, ties to the later position,
// best first.
std::vector<int32_t> top_k_positions(std::span<const double> scores, int k);
// |a ∩ b| / |a ∪ b| of two sets of positions (any order, no duplicates); 1 if both empty.
double jaccard(std::vector<int32_t> a, std::vector<int32_t> b);

struct PowerLawFit {
  double slope = 0, intercept = 0, r2 = 0;  // log10(score) = intercept + slope * log10(rank)
  int points = 0;                           // ranks used: 1..points
};
// Least squares in log-log space over ranks 1..max_rank (0 = all) of a descending curve;
// ranks with score <= 0 are skipped.
PowerLawFit fit_power_law(std::span<const double> sorted_desc, size_t max_rank = 0);

struct AnalyzeOptions {
  int top_k = 0;              // heavy hitters per head; 0 = 10% of the tokens (the paper's H)
  double threshold = 0.01;    // sparsity cut-off relative to the row maximum
  int prefill_chunk = 0;      // 0 = the whole text in one step (same rows, faster)
  int threads = 1;
};

struct HeavyToken {
  std::string piece;      // token string
  int32_t id = 0;
  int64_t hits = 0;       // (layer, head, position) entries in the top-k sets
  int heads = 0;          // (layer, head) pairs with this token among their top-k
  int occurrences = 0;    // positions of this token in the analysed text
  double share = 0;       // its hits' accumulated attention / all attention (all heads)
};

// Everything analyze_attention() measures, in plain arrays ([layer][head] row-major).
struct AnalysisReport {
  std::string model;
  int n_layers = 0, n_heads = 0, n_kv_heads = 0, n_tokens = 0, top_k = 0;
  double threshold = 0.01;
  std::vector<int32_t> tokens;              // [n_tokens], BOS first
  std::vector<double> sparsity;             // [L][H]
  std::vector<double> hh_share;             // [L][H]: top-k's share of the head's attention
  std::vector<double> head_overlap;         // [L][H][H]: Jaccard between heads' top-k sets
  std::vector<double> head_overlap_layer;   // [L]: mean over head pairs (h < h')
  std::vector<double> step_overlap_layer;   // [L][n_tokens]: mean over heads; NaN where t < k
  std::vector<double> step_overlap_mean;    // [n_tokens]: mean over all heads
  std::vector<double> step_overlap_layer_avg;  // [L]: mean over t >= k
  double step_overlap_avg = 0;              // mean over t >= k and all heads
  std::vector<double> rank_scores_layer;    // [L][n_tokens]: descending scores, mean over heads
  std::vector<double> rank_scores_all;      // [n_tokens]: mean over all heads
  // Fits over ranks 1..n_tokens/2: the lowest ranks are the last tokens of the text, whose
  // scores are cut short because few rows came after them (not part of the power law).
  std::vector<PowerLawFit> fit_layer;       // [L]
  PowerLawFit fit_all;
  std::vector<double> sparsity_layer;       // [L]: mean over heads
  double sparsity_avg = 0;
  double hh_share_avg = 0;
  std::vector<HeavyToken> heavy_tokens;     // by hits, descending
  std::vector<std::vector<int32_t>> heavy_hitters;  // [L*H]: top-k positions, best first
  double seconds = 0;
};

// Summarises finished statistics (tokens: the analysed ids, for token strings).
AnalysisReport summarize(const AttentionStats& stats, std::span<const int32_t> tokens, const Tokenizer& tok);

// Runs BOS + text_tokens (cut to the model's context) through a full-cache session with
// an observer and summarises it.
AnalysisReport analyze_attention(std::shared_ptr<const Model> model, std::span<const int32_t> text_tokens,
                                 const AnalyzeOptions& opts);

nlohmann::json to_json(const AnalysisReport& r);
// Readable multi-line summary (tables of sparsity, fits, heavy hitters, overlaps).
std::string format_summary(const AnalysisReport& r, size_t max_tokens_listed = 20);

// Writes into out_dir (created if missing): analysis.json, sparsity.csv,
// accumulated-scores.csv, heavy-hitters.csv, overlap-steps.csv, overlap-heads.csv, and the
// figures attention-sparsity, accumulated-scores, overlap-steps, overlap-heads (SVG+PNG).
// Returns the paths written. plots = false skips the figures (no gnuplot needed).
std::vector<std::string> write_analysis(const AnalysisReport& r, const std::string& out_dir, bool plots = true);

// A token string shown safely on one line: JSON-style escapes, quoted.
std::string display_piece(const std::string& piece);

}  // namespace h2o
