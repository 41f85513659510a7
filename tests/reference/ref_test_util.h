// Helpers shared by the tests that hold the engine to the naive references: loading
// the models once, real text as tokens, running a Session, comparing numbers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "reference/naive_llama.h"
#include "reference/naive_neox.h"
#include "reference/naive_opt.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace h2o::test {

// Loaded once per test binary: the models are immutable and shared by sessions.
inline std::shared_ptr<const Model> load_model_cached(const std::string& path, const std::string& tokenizer = "") {
  static std::map<std::string, std::shared_ptr<const Model>> cache;
  auto& slot = cache[path + "|" + tokenizer];
  if (!slot) slot = Model::load({path, tokenizer});
  return slot;
}
inline std::shared_ptr<const Model> stories_bin() {
  return load_model_cached(model_path("stories260K.bin"), model_path("tok512.bin"));
}
// The naive reference of a model under ../shared/models/ (by architecture: OPT directories
// are read by NaiveOpt, GPT-NeoX files by NaiveNeox, llama2.c and GGUF llama/qwen2 files
// by NaiveLlama).
inline const ref::NaiveModel& naive_model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<ref::NaiveModel>> cache;
  auto& slot = cache[name];
  if (!slot) {
    if (name.find("opt") != std::string::npos) {
      slot = std::make_unique<ref::NaiveOpt>(model_path(name));  // a Hugging Face directory
    } else if (name.find("neox") != std::string::npos) {
      slot = std::make_unique<ref::NaiveNeox>(model_path(name));
    } else {
      slot = std::make_unique<ref::NaiveLlama>(model_path(name));
    }
  }
  return *slot;
}

// The first n tokens (BOS first) of a shared text file, tokenized by the engine.
inline std::vector<int32_t> text_tokens(const Model& model, size_t n,
                                        const std::string& rel = "data/tinystories-valid.txt") {
  std::ifstream in(shared_path(rel), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Enough characters for n tokens (a token covers at least one byte) without
  // tokenizing the whole file.
  text.resize(std::min(text.size(), n * 8));
  std::vector<int32_t> ids = model.tokenizer().encode(text, true);
  if (ids.size() < n) ADD_FAILURE() << "only " << ids.size() << " tokens in " << rel;
  ids.resize(std::min(ids.size(), n));
  return ids;
}

// Feeds `tokens` to a session, one feed() call per entry of `feeds` (sizes summing to
// tokens.size()), and returns the logits after every token ([n][vocab]).
inline std::vector<float> feed_all(Session& s, std::span<const int32_t> tokens, const std::vector<int>& feeds) {
  std::vector<float> all, part;
  size_t at = 0;
  for (int n : feeds) {
    s.feed(tokens.subspan(at, static_cast<size_t>(n)), &part);
    all.insert(all.end(), part.begin(), part.end());
    at += static_cast<size_t>(n);
  }
  EXPECT_EQ(at, tokens.size());
  return all;
}

// Largest |a - b| between engine logits (flat [n][V], float) and reference rows (double).
inline double max_abs_diff(const std::vector<float>& flat, const std::vector<ref::Vec>& rows, size_t vocab,
                           size_t* worst_row = nullptr) {
  double worst = 0.0;
  EXPECT_EQ(flat.size(), rows.size() * vocab);
  for (size_t r = 0; r < rows.size() && (r + 1) * vocab <= flat.size(); ++r) {
    for (size_t i = 0; i < vocab; ++i) {
      const double d = std::fabs(static_cast<double>(flat[r * vocab + i]) - rows[r][i]);
      if (!(d <= worst)) {  // also catches NaN
        worst = std::isnan(d) ? INFINITY : d;
        if (worst_row) *worst_row = r;
      }
    }
  }
  return worst;
}

// Per-row log-softmax of flat float logits, in double.
inline std::vector<ref::Vec> engine_logprobs(const std::vector<float>& flat, size_t vocab) {
  std::vector<ref::Vec> out;
  for (size_t r = 0; r * vocab < flat.size(); ++r)
    out.push_back(ref::log_softmax(std::span<const float>(flat.data() + r * vocab, vocab)));
  return out;
}

// Mean |a - b| over every entry of every row.
inline double mean_abs_diff(const std::vector<ref::Vec>& a, const std::vector<ref::Vec>& b) {
  double sum = 0.0;
  size_t n = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t r = 0; r < std::min(a.size(), b.size()); ++r) {
    for (size_t i = 0; i < a[r].size(); ++i, ++n) sum += std::fabs(a[r][i] - b[r][i]);
  }
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

inline double max_abs_diff(const std::vector<ref::Vec>& a, const std::vector<ref::Vec>& b) {
  double worst = 0.0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t r = 0; r < std::min(a.size(), b.size()); ++r) {
    for (size_t i = 0; i < a[r].size(); ++i) {
      const double d = std::fabs(a[r][i] - b[r][i]);
      if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
    }
  }
  return worst;
}

}  // namespace h2o::test
