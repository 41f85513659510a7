#include "eval/analyze.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>

#include "common/check.h"
#include "plot/gnuplot.h"
#include "runtime/session.h"

namespace h2o {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

size_t idx(int a, int b, int nb) { return static_cast<size_t>(a) * static_cast<size_t>(nb) + static_cast<size_t>(b); }

double mean_finite(std::span<const double> v) {
  double s = 0;
  size_t n = 0;
  for (double x : v) {
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  }
  return n ? s / static_cast<double>(n) : kNaN;
}

void write_text(const std::string& path, const std::string& text, std::vector<std::string>& written) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot write file", path);
  out << text;
  out.close();
  if (!out) fail("{}: write error", path);
  written.push_back(path);
}

// CSV field: quoted when it holds a separator, quote or line break (RFC 4180).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos && !s.empty() && s.front() != ' ') return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string csv_num(double v) { return std::isfinite(v) ? fmt::format("{:.8g}", v) : ""; }

// Ranks 1..n thinned to about `per_decade` points per factor of ten: enough for a smooth
// log-log curve, far fewer bytes in the SVG than every rank.
std::vector<size_t> log_spaced_ranks(size_t n, int per_decade = 30) {
  std::vector<size_t> r;
  double next = 1.0;
  for (size_t i = 1; i <= n; ++i) {
    if (static_cast<double>(i) + 1e-9 >= next || i == n) {
      r.push_back(i);
      next = static_cast<double>(i) * std::pow(10.0, 1.0 / per_decade);
    }
  }
  return r;
}

// Layers to draw as separate curves: all when few, else first, quarter, middle, last.
std::vector<int> representative_layers(int n_layers) {
  std::vector<int> v;
  if (n_layers <= 8) {
    for (int l = 0; l < n_layers; ++l) v.push_back(l);
    return v;
  }
  for (int l : {0, n_layers / 4, n_layers / 2, (3 * n_layers) / 4, n_layers - 1}) {
    if (v.empty() || v.back() != l) v.push_back(l);
  }
  return v;
}

}  // namespace

// ---- streaming statistics ------------------------------------------------------------

AttentionStats::AttentionStats(int n_layers, int n_heads, int n_tokens, int top_k, double threshold)
    : n_layers_(n_layers), n_heads_(n_heads), n_tokens_(n_tokens), top_k_(top_k), threshold_(threshold) {
  if (n_layers < 1 || n_heads < 1 || n_tokens < 1) fail("analyze: empty shape {}x{}x{}", n_layers, n_heads, n_tokens);
  if (top_k < 1 || top_k > n_tokens) fail("--top-k: must be in [1, {}] (the tokens analysed), got {}", n_tokens, top_k);
  if (!(threshold > 0.0 && threshold < 1.0)) fail("--threshold: must be in (0, 1), got {}", threshold);
  heads_.resize(static_cast<size_t>(n_layers) * static_cast<size_t>(n_heads));
  for (Head& h : heads_) {
    h.acc.assign(static_cast<size_t>(n_tokens), 0.0);
    h.step_overlap.assign(static_cast<size_t>(n_tokens), kNaN);
  }
}

size_t AttentionStats::slot(int layer, int head) const {
  if (layer < 0 || layer >= n_layers_ || head < 0 || head >= n_heads_)
    fail("analyze: (layer {}, head {}) outside {}x{}", layer, head, n_layers_, n_heads_);
  return idx(layer, head, n_heads_);
}

void AttentionStats::observe(const AttentionRow& row) {
  Head& h = heads_[slot(row.layer, row.q_head)];
  if (row.q_pos <= h.last_pos || row.q_pos >= n_tokens_)
    fail("analyze: row at position {} of (layer {}, head {}) out of order or beyond {} tokens", row.q_pos, row.layer,
         row.q_head, n_tokens_);
  if (row.n < 1) fail("analyze: row at position {} attends to nothing", row.q_pos);
  h.last_pos = row.q_pos;
  ++h.rows;
  // (a) sparsity: entries below threshold * this row's maximum.
  float max = 0.0f;
  for (int j = 0; j < row.n; ++j) max = std::max(max, row.probs[j]);
  const double cut = threshold_ * static_cast<double>(max);
  int64_t below = 0;
  for (int j = 0; j < row.n; ++j) {
    const int32_t p = row.slot_pos[j];
    if (p < 0 || p > row.q_pos) fail("analyze: key position {} is not causal for query {}", p, row.q_pos);
    if (static_cast<double>(row.probs[j]) < cut) ++below;
    // (b) accumulated score, in double: a key gathers up to n_tokens small terms.
    h.acc[static_cast<size_t>(p)] += static_cast<double>(row.probs[j]);
  }
  h.entries += row.n;
  h.below += below;
  // (d) the top-k set over keys 0..q_pos after this row, against the one before it.
  std::vector<int32_t> top = top_k_positions(std::span<const double>(h.acc).first(static_cast<size_t>(row.q_pos) + 1), top_k_);
  std::sort(top.begin(), top.end());
  if (row.q_pos >= top_k_ && h.prev_top.size() == static_cast<size_t>(top_k_))
    h.step_overlap[static_cast<size_t>(row.q_pos)] = jaccard(h.prev_top, top);
  h.prev_top = std::move(top);
}

double AttentionStats::sparsity(int layer, int head) const {
  const Head& h = head_at(layer, head);
  return h.entries ? static_cast<double>(h.below) / static_cast<double>(h.entries) : 0.0;
}

std::span<const double> AttentionStats::accumulated(int layer, int head) const { return head_at(layer, head).acc; }

std::vector<int32_t> AttentionStats::heavy_hitters(int layer, int head) const {
  const Head& h = head_at(layer, head);
  const size_t seen = static_cast<size_t>(h.last_pos + 1);
  return top_k_positions(std::span<const double>(h.acc).first(seen), top_k_);
}

std::span<const double> AttentionStats::step_overlap(int layer, int head) const {
  return head_at(layer, head).step_overlap;
}

std::vector<int32_t> top_k_positions(std::span<const double> scores, int k) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t kk = std::min(order.size(), static_cast<size_t>(std::max(k, 0)));
  auto better = [&](int32_t a, int32_t b) {
    const double sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    return sa != sb ? sa > sb : a > b;
  };
  std::nth_element(order.begin(), order.begin() + static_cast<long>(kk), order.end(), better);
  order.resize(kk);
  std::sort(order.begin(), order.end(), better);
  return order;
}

double jaccard(std::vector<int32_t> a, std::vector<int32_t> b) {
  if (a.empty() && b.empty()) return 1.0;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t common = 0;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] == b[j]) {
      ++common;
      ++i;
      ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

PowerLawFit fit_power_law(std::span<const double> sorted_desc, size_t max_rank) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
  int n = 0;
  const size_t end = max_rank > 0 ? std::min(max_rank, sorted_desc.size()) : sorted_desc.size();
  for (size_t i = 0; i < end; ++i) {
    if (!(sorted_desc[i] > 0.0) || !std::isfinite(sorted_desc[i])) continue;
    const double x = std::log10(static_cast<double>(i + 1)), y = std::log10(sorted_desc[i]);
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    syy += y * y;
    ++n;
  }
  PowerLawFit f;
  f.points = n;
  if (n < 2) return f;
  const double dn = n;
  const double vx = sxx - sx * sx / dn, vy = syy - sy * sy / dn, cxy = sxy - sx * sy / dn;
  if (vx <= 0) return f;
  f.slope = cxy / vx;
  f.intercept = (sy - f.slope * sx) / dn;
  f.r2 = vy > 0 ? cxy * cxy / (vx * vy) : 1.0;
  return f;
}

// ---- summary --------------------------------------------------------------------------

AnalysisReport summarize(const AttentionStats& st, std::span<const int32_t> tokens, const Tokenizer& tok) {
  const int L = st.n_layers(), H = st.n_heads(), N = st.n_tokens(), K = st.top_k();
  if (tokens.size() != static_cast<size_t>(N)) fail("analyze: {} token ids for {} positions", tokens.size(), N);
  AnalysisReport r;
  r.n_layers = L;
  r.n_heads = H;
  r.n_tokens = N;
  r.top_k = K;
  r.threshold = st.threshold();
  r.tokens.assign(tokens.begin(), tokens.end());
  const size_t LH = static_cast<size_t>(L) * static_cast<size_t>(H), Nn = static_cast<size_t>(N);
  r.sparsity.resize(LH);
  r.hh_share.resize(LH);
  r.heavy_hitters.resize(LH);
  r.head_overlap.assign(LH * static_cast<size_t>(H), kNaN);
  r.head_overlap_layer.assign(static_cast<size_t>(L), kNaN);
  r.step_overlap_layer.assign(static_cast<size_t>(L) * Nn, kNaN);
  r.step_overlap_mean.assign(Nn, kNaN);
  r.step_overlap_layer_avg.assign(static_cast<size_t>(L), kNaN);
  r.rank_scores_layer.assign(static_cast<size_t>(L) * Nn, 0.0);
  r.rank_scores_all.assign(Nn, 0.0);
  r.sparsity_layer.assign(static_cast<size_t>(L), 0.0);

  const size_t fit_ranks = std::max<size_t>(2, Nn / 2);  // see AnalysisReport::fit_all
  std::map<int32_t, HeavyToken> heavy;
  std::map<int32_t, std::vector<bool>> heavy_heads;  // token -> which (layer, head) had it
  double total_attention = 0;
  std::vector<double> sorted(Nn);
  std::vector<double> step_sum(Nn, 0.0);
  std::vector<int> step_n(Nn, 0);
  for (int l = 0; l < L; ++l) {
    std::vector<double> layer_step_sum(Nn, 0.0);
    std::vector<int> layer_step_n(Nn, 0);
    for (int h = 0; h < H; ++h) {
      const size_t lh = idx(l, h, H);
      r.sparsity[lh] = st.sparsity(l, h);
      r.sparsity_layer[static_cast<size_t>(l)] += r.sparsity[lh] / H;
      const auto acc = st.accumulated(l, h);
      const double rows = static_cast<double>(st.rows(l, h));
      total_attention += rows;
      // (b) rank curve, averaged rank by rank over heads.
      sorted.assign(acc.begin(), acc.end());
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      for (size_t i = 0; i < Nn; ++i) {
        r.rank_scores_layer[static_cast<size_t>(l) * Nn + i] += sorted[i] / H;
        r.rank_scores_all[i] += sorted[i] / static_cast<double>(LH);
      }
      // (c) heavy hitters and their share of this head's attention.
      r.heavy_hitters[lh] = st.heavy_hitters(l, h);
      double top = 0;
      for (int32_t p : r.heavy_hitters[lh]) {
        const double a = acc[static_cast<size_t>(p)];
        top += a;
        const int32_t id = tokens[static_cast<size_t>(p)];
        HeavyToken& t = heavy[id];
        t.id = id;
        ++t.hits;
        t.share += a;
        auto& seen = heavy_heads[id];
        if (seen.empty()) seen.assign(LH, false);
        seen[lh] = true;
      }
      r.hh_share[lh] = rows > 0 ? top / rows : 0.0;
      // (d) consecutive steps.
      const auto so = st.step_overlap(l, h);
      for (size_t t = 0; t < Nn; ++t) {
        if (!std::isfinite(so[t])) continue;
        layer_step_sum[t] += so[t];
        ++layer_step_n[t];
        step_sum[t] += so[t];
        ++step_n[t];
      }
    }
    for (size_t t = 0; t < Nn; ++t) {
      if (layer_step_n[t]) r.step_overlap_layer[static_cast<size_t>(l) * Nn + t] = layer_step_sum[t] / layer_step_n[t];
    }
    r.step_overlap_layer_avg[static_cast<size_t>(l)] =
        mean_finite(std::span<const double>(r.step_overlap_layer).subspan(static_cast<size_t>(l) * Nn, Nn));
    // (d) between heads of this layer.
    double pair_sum = 0;
    int pairs = 0;
    for (int a = 0; a < H; ++a) {
      for (int b = 0; b < H; ++b) {
        const double j = jaccard(r.heavy_hitters[idx(l, a, H)], r.heavy_hitters[idx(l, b, H)]);
        r.head_overlap[(static_cast<size_t>(l) * static_cast<size_t>(H) + static_cast<size_t>(a)) * static_cast<size_t>(H) +
                       static_cast<size_t>(b)] = j;
        if (a < b) {
          pair_sum += j;
          ++pairs;
        }
      }
    }
    if (pairs) r.head_overlap_layer[static_cast<size_t>(l)] = pair_sum / pairs;
    r.fit_layer.push_back(
        fit_power_law(std::span<const double>(r.rank_scores_layer).subspan(static_cast<size_t>(l) * Nn, Nn), fit_ranks));
  }
  for (size_t t = 0; t < Nn; ++t) {
    if (step_n[t]) r.step_overlap_mean[t] = step_sum[t] / step_n[t];
  }
  r.step_overlap_avg = mean_finite(r.step_overlap_mean);
  r.fit_all = fit_power_law(r.rank_scores_all, fit_ranks);
  r.sparsity_avg = std::accumulate(r.sparsity.begin(), r.sparsity.end(), 0.0) / static_cast<double>(LH);
  r.hh_share_avg = std::accumulate(r.hh_share.begin(), r.hh_share.end(), 0.0) / static_cast<double>(LH);

  std::map<int32_t, int> occurrences;
  for (int32_t id : tokens) ++occurrences[id];
  for (auto& [id, t] : heavy) {
    t.piece = tok.piece(id);
    t.occurrences = occurrences[id];
    t.heads = static_cast<int>(std::count(heavy_heads[id].begin(), heavy_heads[id].end(), true));
    t.share = total_attention > 0 ? t.share / total_attention : 0.0;
    r.heavy_tokens.push_back(t);
  }
  std::sort(r.heavy_tokens.begin(), r.heavy_tokens.end(), [](const HeavyToken& a, const HeavyToken& b) {
    return a.hits != b.hits ? a.hits > b.hits : a.share != b.share ? a.share > b.share : a.id < b.id;
  });
  return r;
}

AnalysisReport analyze_attention(std::shared_ptr<const Model> model, std::span<const int32_t> text_tokens,
                                 const AnalyzeOptions& opts) {
  const ModelConfig& c = model->config();
  if (text_tokens.empty()) fail("analyze: the text has no tokens");
  // BOS (if the vocabulary adds one) + as much of the text as fits in the trained context.
  std::vector<int32_t> tokens;
  if (model->tokenizer().add_bos()) tokens.push_back(*model->tokenizer().bos_id());
  const size_t n_text =
      std::min(text_tokens.size(), static_cast<size_t>(std::max(c.context_length - static_cast<int>(tokens.size()), 0)));
  tokens.insert(tokens.end(), text_tokens.begin(), text_tokens.begin() + static_cast<long>(n_text));
  const int N = static_cast<int>(tokens.size());
  const int k = opts.top_k > 0 ? opts.top_k : std::max(1, static_cast<int>(std::lround(0.1 * N)));

  AttentionStats stats(c.n_layers, c.n_heads, N, k, opts.threshold);
  SessionOptions so;
  so.kv.policy = "full";
  so.kv.prefill_chunk = opts.prefill_chunk;
  so.threads = opts.threads;
  so.expected_length = N;
  Session session(model, so);
  session.set_attention_observer([&stats](const AttentionRow& row) { stats.observe(row); });
  const auto t0 = std::chrono::steady_clock::now();
  session.feed(tokens);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int l = 0; l < c.n_layers; ++l) {
    for (int h = 0; h < c.n_heads; ++h) {
      if (stats.rows(l, h) != N) fail("analyze: (layer {}, head {}) saw {} of {} rows", l, h, stats.rows(l, h), N);
    }
  }
  AnalysisReport r = summarize(stats, tokens, model->tokenizer());
  r.n_kv_heads = c.n_kv_heads;
  r.seconds = seconds;
  return r;
}

// ---- output ---------------------------------------------------------------------------

std::string display_piece(const std::string& piece) { return nlohmann::json(piece).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

nlohmann::json to_json(const AnalysisReport& r) {
  using nlohmann::json;
  const size_t H = static_cast<size_t>(r.n_heads), Nn = static_cast<size_t>(r.n_tokens);
  auto fit_json = [](const PowerLawFit& f) {
    return json{{"slope", f.slope}, {"intercept_log10", f.intercept}, {"r2", f.r2}, {"points", f.points}};
  };
  auto finite_or_null = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json layers = json::array();
  for (int l = 0; l < r.n_layers; ++l) {
    const size_t lo = static_cast<size_t>(l) * H;
    layers.push_back({{"layer", l},
                      {"sparsity", std::vector<double>(r.sparsity.begin() + static_cast<long>(lo),
                                                       r.sparsity.begin() + static_cast<long>(lo + H))},
                      {"sparsity_mean", r.sparsity_layer[static_cast<size_t>(l)]},
                      {"heavy_hitter_share", std::vector<double>(r.hh_share.begin() + static_cast<long>(lo),
                                                                 r.hh_share.begin() + static_cast<long>(lo + H))},
                      {"power_law", fit_json(r.fit_layer[static_cast<size_t>(l)])},
                      {"head_overlap_mean", finite_or_null(r.head_overlap_layer[static_cast<size_t>(l)])},
                      {"step_overlap_mean", finite_or_null(r.step_overlap_layer_avg[static_cast<size_t>(l)])}});
  }
  json tokens = json::array();
  for (const HeavyToken& t : r.heavy_tokens) {
    tokens.push_back({{"piece", t.piece}, {"id", t.id}, {"hits", t.hits}, {"heads", t.heads},
                      {"occurrences", t.occurrences}, {"share", t.share}});
  }
  std::vector<json> step;
  for (size_t t = 0; t < Nn; ++t) step.push_back(finite_or_null(r.step_overlap_mean[t]));
  json j = {{"model", r.model},
            {"n_tokens", r.n_tokens},
            {"n_layers", r.n_layers},
            {"n_heads", r.n_heads},
            {"n_kv_heads", r.n_kv_heads},
            {"top_k", r.top_k},
            {"threshold", r.threshold},
            {"sparsity_mean", r.sparsity_avg},
            {"heavy_hitter_share_mean", r.hh_share_avg},
            {"power_law", fit_json(r.fit_all)},
            {"step_overlap_mean", finite_or_null(r.step_overlap_avg)},
            {"layers", layers},
            {"heavy_tokens", tokens},
            {"rank_scores", r.rank_scores_all},
            {"step_overlap", step},
            {"seconds", r.seconds}};
  return j;
}

std::string format_summary(const AnalysisReport& r, size_t max_tokens_listed) {
  const int L = r.n_layers, H = r.n_heads;
  std::string s = fmt::format("{}: {} tokens (BOS + {} of the text), {} layers x {} heads ({} KV heads), "
                              "heavy hitters: top {} per head\n\n",
                              r.model.empty() ? "model" : r.model, r.n_tokens, r.n_tokens - 1, L, H, r.n_kv_heads,
                              r.top_k);
  s += fmt::format("(a) Attention sparsity: share of causal entries below {:g}% of their row's maximum\n",
                   r.threshold * 100);
  s += "layer ";
  for (int h = 0; h < H; ++h) s += fmt::format(" {:>5}", fmt::format("h{}", h));
  s += "   mean\n";
  for (int l = 0; l < L; ++l) {
    s += fmt::format("{:>5} ", l);
    for (int h = 0; h < H; ++h) s += fmt::format(" {:5.3f}", r.sparsity[idx(l, h, H)]);
    s += fmt::format("  {:5.3f}\n", r.sparsity_layer[static_cast<size_t>(l)]);
  }
  s += fmt::format("  all  mean {:.3f}\n\n", r.sparsity_avg);

  s += fmt::format("(b) Accumulated attention per key, sorted by rank (mean over heads): log-log least-squares fit "
                   "over ranks 1..{}\n",
                   r.fit_all.points);
  s += "layer   slope     r2\n";
  for (int l = 0; l < L; ++l) {
    const PowerLawFit& f = r.fit_layer[static_cast<size_t>(l)];
    s += fmt::format("{:>5}  {:6.3f}  {:5.3f}\n", l, f.slope, f.r2);
  }
  s += fmt::format("  all  {:6.3f}  {:5.3f}   (score ~ rank^{:.2f}; rank 1 holds {:.1f} of {} rows' attention)\n\n",
                   r.fit_all.slope, r.fit_all.r2, r.fit_all.slope, r.rank_scores_all.empty() ? 0.0 : r.rank_scores_all[0],
                   r.n_tokens);

  s += fmt::format("(c) Heavy hitters: the top {} keys per head by accumulated attention hold {:.1f}% of it "
                   "(mean over {} heads)\n",
                   r.top_k, r.hh_share_avg * 100, L * H);
  s += "token             hits  heads  in text  share of all attention\n";
  for (size_t i = 0; i < std::min(max_tokens_listed, r.heavy_tokens.size()); ++i) {
    const HeavyToken& t = r.heavy_tokens[i];
    s += fmt::format("{:<16} {:>5}  {:>5}  {:>7}  {:6.2f}%\n", display_piece(t.piece), t.hits, t.heads, t.occurrences,
                     t.share * 100);
  }
  if (r.heavy_tokens.size() > max_tokens_listed)
    s += fmt::format("... {} more token strings\n", r.heavy_tokens.size() - max_tokens_listed);
  s += "\n(d) Overlap (Jaccard) of top-k heavy-hitter sets\n";
  s += "layer  between heads  consecutive steps\n";
  for (int l = 0; l < L; ++l) {
    s += fmt::format("{:>5}  {:13.3f}  {:17.3f}\n", l, r.head_overlap_layer[static_cast<size_t>(l)],
                     r.step_overlap_layer_avg[static_cast<size_t>(l)]);
  }
  s += fmt::format("  all  {:13.3f}  {:17.3f}\n", mean_finite(r.head_overlap_layer), r.step_overlap_avg);
  return s;
}

std::vector<std::string> write_analysis(const AnalysisReport& r, const std::string& out_dir, bool plots) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail("{}: cannot create output directory: {}", out_dir, ec.message());
  std::vector<std::string> written;
  const int L = r.n_layers, H = r.n_heads;
  const size_t Nn = static_cast<size_t>(r.n_tokens);
  // Token pieces of other vocabularies may be partial UTF-8: replaced, never a throw.
  write_text(out_dir + "/analysis.json",
             to_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", written);

  std::string csv = "layer,head,sparsity,heavy_hitter_share\n";
  for (int l = 0; l < L; ++l) {
    for (int h = 0; h < H; ++h)
      csv += fmt::format("{},{},{},{}\n", l, h, csv_num(r.sparsity[idx(l, h, H)]), csv_num(r.hh_share[idx(l, h, H)]));
  }
  write_text(out_dir + "/sparsity.csv", csv, written);

  csv = "rank,all";
  for (int l = 0; l < L; ++l) csv += fmt::format(",layer{}", l);
  csv += "\n";
  for (size_t i = 0; i < Nn; ++i) {
    csv += fmt::format("{},{}", i + 1, csv_num(r.rank_scores_all[i]));
    for (int l = 0; l < L; ++l) csv += "," + csv_num(r.rank_scores_layer[static_cast<size_t>(l) * Nn + i]);
    csv += "\n";
  }
  write_text(out_dir + "/accumulated-scores.csv", csv, written);

  csv = "piece,id,hits,heads,occurrences,share\n";
  for (const HeavyToken& t : r.heavy_tokens)
    csv += fmt::format("{},{},{},{},{},{}\n", csv_field(t.piece), t.id, t.hits, t.heads, t.occurrences, csv_num(t.share));
  write_text(out_dir + "/heavy-hitters.csv", csv, written);

  csv = "step,all";
  for (int l = 0; l < L; ++l) csv += fmt::format(",layer{}", l);
  csv += "\n";
  for (size_t t = 0; t < Nn; ++t) {
    if (!std::isfinite(r.step_overlap_mean[t])) continue;
    csv += fmt::format("{},{}", t, csv_num(r.step_overlap_mean[t]));
    for (int l = 0; l < L; ++l) csv += "," + csv_num(r.step_overlap_layer[static_cast<size_t>(l) * Nn + t]);
    csv += "\n";
  }
  write_text(out_dir + "/overlap-steps.csv", csv, written);

  csv = "layer,head_a,head_b,jaccard\n";
  for (int l = 0; l < L; ++l) {
    for (int a = 0; a < H; ++a) {
      for (int b = a + 1; b < H; ++b) {
        const size_t i = (static_cast<size_t>(l) * static_cast<size_t>(H) + static_cast<size_t>(a)) * static_cast<size_t>(H) +
                         static_cast<size_t>(b);
        csv += fmt::format("{},{},{},{}\n", l, a, b, csv_num(r.head_overlap[i]));
      }
    }
  }
  write_text(out_dir + "/overlap-heads.csv", csv, written);
  if (!plots) return written;

  const std::string who = fmt::format("{}, {} tokens", r.model.empty() ? "model" : r.model, r.n_tokens);
  auto add_figure = [&](const plot::Figure& f) {
    for (const std::string& p : {f.svg, f.png, f.script, f.data}) written.push_back(p);
  };
  std::vector<std::string> layer_names, head_names;
  for (int l = 0; l < L; ++l) layer_names.push_back(fmt::format("layer {}", l));
  for (int h = 0; h < H; ++h) head_names.push_back(fmt::format("h{}", h));

  // (a) sparsity heatmap.
  plot::Heatmap sp;
  sp.title = fmt::format("Attention sparsity: share of entries < {:g}% of the row max ({})", r.threshold * 100, who);
  sp.x_label = "query head";
  sp.y_label = "layer";
  sp.value_label = "sparsity (fraction of causal entries)";
  sp.rows = L;
  sp.cols = H;
  sp.values = r.sparsity;
  sp.row_names = layer_names;
  sp.col_names = head_names;
  add_figure(plot::render(sp, out_dir, "attention-sparsity"));

  // (b) rank curves on log-log axes, with the fit over all heads.
  plot::LinePlot rk;
  rk.title = fmt::format("Accumulated attention score vs rank (mean over heads; {})", who);
  rk.x_label = "rank of key by accumulated score (1 = largest)";
  rk.y_label = "accumulated attention (sum of probabilities over query rows)";
  rk.log_x = rk.log_y = true;
  const std::vector<size_t> ranks = log_spaced_ranks(Nn);
  auto curve = [&](std::string label, std::span<const double> v, plot::LineStyle style) {
    plot::Series s{std::move(label), {}, {}, style, {}};
    for (size_t i : ranks) {
      s.x.push_back(static_cast<double>(i));
      s.y.push_back(v[i - 1]);
    }
    return s;
  };
  for (int l : representative_layers(L))
    rk.series.push_back(curve(fmt::format("layer {}", l),
                              std::span<const double>(r.rank_scores_layer).subspan(static_cast<size_t>(l) * Nn, Nn),
                              plot::LineStyle::Lines));
  rk.series.push_back(curve("all heads", r.rank_scores_all, plot::LineStyle::Lines));
  plot::Series fit{fmt::format("fit, ranks 1-{}: score ~ rank^{:.2f} (R^2 {:.2f})", r.fit_all.points, r.fit_all.slope,
                               r.fit_all.r2),
                   {},
                   {},
                   plot::LineStyle::Dashed, {}};
  for (double x : {1.0, static_cast<double>(r.fit_all.points)}) {
    fit.x.push_back(x);
    fit.y.push_back(std::pow(10.0, r.fit_all.intercept + r.fit_all.slope * std::log10(x)));
  }
  rk.series.push_back(fit);
  rk.key_position = "bottom left";
  add_figure(plot::render(rk, out_dir, "accumulated-scores"));

  // (d) consecutive-step overlap per layer. Single steps are noisy (one swap in k moves
  // the value by ~2/k), so the figure shows a moving average; the CSV has every step.
  constexpr size_t kSmooth = 16;
  plot::LinePlot ov;
  ov.title = fmt::format("Heavy-hitter set stability: Jaccard(top-{} after step t-1, after step t) ({})", r.top_k, who);
  ov.x_label = "step t (query position, tokens)";
  ov.y_label = fmt::format("Jaccard overlap (mean over heads, {}-step moving average)", kSmooth);
  ov.tight_x = true;
  auto smoothed = [&](std::string label, std::span<const double> v) {
    plot::Series s{std::move(label), {}, {}, plot::LineStyle::Lines, {}};
    for (size_t t = 0; t < v.size(); ++t) {
      double sum = 0;
      size_t n = 0;
      for (size_t u = t + 1 >= kSmooth ? t + 1 - kSmooth : 0; u <= t; ++u) {
        if (std::isfinite(v[u])) {
          sum += v[u];
          ++n;
        }
      }
      if (n < std::min(kSmooth, t + 1) / 2 || n == 0) continue;  // mostly undefined steps
      s.x.push_back(static_cast<double>(t));
      s.y.push_back(sum / static_cast<double>(n));
    }
    return s;
  };
  for (int l : representative_layers(L))
    ov.series.push_back(smoothed(fmt::format("layer {}", l),
                                 std::span<const double>(r.step_overlap_layer).subspan(static_cast<size_t>(l) * Nn, Nn)));
  plot::Series all = smoothed("all heads", r.step_overlap_mean);
  all.style = plot::LineStyle::Dashed;
  ov.series.push_back(std::move(all));
  ov.key_position = "bottom right";
  add_figure(plot::render(ov, out_dir, "overlap-steps"));

  // (d) between heads: each head's mean Jaccard with the other heads of its layer.
  plot::Heatmap hm;
  hm.title = fmt::format("Heavy hitters shared between heads: mean Jaccard of top-{} sets ({})", r.top_k, who);
  hm.x_label = "query head";
  hm.y_label = "layer";
  hm.value_label = "mean Jaccard overlap with the layer's other heads";
  hm.rows = L;
  hm.cols = H;
  hm.row_names = layer_names;
  hm.col_names = head_names;
  hm.values.assign(static_cast<size_t>(L) * static_cast<size_t>(H), kNaN);
  if (H > 1) {
    for (int l = 0; l < L; ++l) {
      for (int a = 0; a < H; ++a) {
        double sum = 0;
        for (int b = 0; b < H; ++b) {
          if (b != a)
            sum += r.head_overlap[(static_cast<size_t>(l) * static_cast<size_t>(H) + static_cast<size_t>(a)) *
                                      static_cast<size_t>(H) +
                                  static_cast<size_t>(b)];
        }
        hm.values[idx(l, a, H)] = sum / (H - 1);
      }
    }
    add_figure(plot::render(hm, out_dir, "overlap-heads"));
  }
  return written;
}

}  // namespace h2o
