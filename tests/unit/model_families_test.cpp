// The new architectures (llama with Llama 3 RoPE factors, qwen2, gptneox) against the
// fixtures' reference outputs from llama.cpp and an independent float64 implementation
// (../shared/models/families/README.md §3): logits of the last prompt position within
// the README's F32 tolerance, the top-1 token at every prompt position, and the greedy
// continuation exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "fixtures/family_refs.h"
#include "model/model.h"
#include "runtime/session.h"

namespace h2o {
namespace {

struct FamilyCase {
  const char* model;     // refs/ prefix
  const char* file;      // model file under families/
  const char* npy;       // last-logits file suffix to compare with
  double tolerance;      // max |delta logit|
};

std::string case_name(const testing::TestParamInfo<FamilyCase>& p) {
  std::string s = std::string(p.param.model) + "_" + p.param.npy;
  std::replace_if(s.begin(), s.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return s;
}

class FamilyLogits : public testing::TestWithParam<FamilyCase> {};

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST_P(FamilyLogits, MatchReferenceOnBothPrompts) {
  const FamilyCase& fc = GetParam();
  const auto model = Model::load({test::family_path(fc.file), ""});
  for (const char* prompt : {"short", "long"}) {
    SCOPED_TRACE(prompt);
    const test::FamilyRef ref = test::load_family_ref(fc.model, prompt);
    ASSERT_EQ(model->config().vocab_size, ref.n_vocab);
    Session s(model, SessionOptions{});
    std::vector<float> all;
    s.feed(ref.prompt_ids, &all);
    const size_t V = static_cast<size_t>(ref.n_vocab), n = ref.prompt_ids.size();
    // The top-1 token at every position.
    int mismatches = 0;
    for (size_t i = 0; i < n; ++i) {
      if (argmax(std::span(all).subspan(i * V, V)) != ref.top5[i][0].first) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0);
    // The full-vocabulary logits of the last position.
    const std::vector<float> want =
        test::load_npy_f32(test::family_path(std::string("refs/") + fc.model + "." + prompt + "." + fc.npy));
    ASSERT_EQ(want.size(), V);
    double max_diff = 0.0;
    for (size_t j = 0; j < V; ++j) max_diff = std::max(max_diff, std::abs(double(all[(n - 1) * V + j]) - want[j]));
    EXPECT_LE(max_diff, fc.tolerance);
    // The greedy continuation (no stop at EOS), `short` only.
    if (!ref.greedy_ids.empty()) {
      std::vector<int32_t> got;
      std::span<const float> logits = std::span(all).subspan((n - 1) * V, V);
      while (got.size() < ref.greedy_ids.size()) {
        const int32_t next = argmax(logits);
        got.push_back(next);
        logits = s.feed(std::span(&next, 1));
      }
      EXPECT_EQ(got, ref.greedy_ids);
    }
  }
}

// Tolerances from the fixtures' README: 1e-3 for an F32 engine against llama.cpp's F32
// logits (llama3, qwen2); NeoX against the float64 oracle's exact-GELU logits at 1e-3 and
// against llama.cpp's tanh-GELU logits at 1e-2.
INSTANTIATE_TEST_SUITE_P(Gguf, FamilyLogits,
                         testing::Values(FamilyCase{"llama3-tiny", "llama3-tiny.gguf", "last_logits.npy", 1e-3},
                                         FamilyCase{"qwen2-tiny", "qwen2-tiny.gguf", "last_logits.npy", 1e-3},
                                         FamilyCase{"neox-tiny", "neox-tiny.gguf", "last_logits.exact.npy", 1e-3},
                                         FamilyCase{"neox-tiny", "neox-tiny.gguf", "last_logits.npy", 1e-2}),
                         case_name);

// The Hugging Face directories: llama-tiny/ and neox-tiny/ hold the same weights as the GGUF
// files above (so the same references); OPT exists only in this form (float64 oracle).
INSTANTIATE_TEST_SUITE_P(HuggingFace, FamilyLogits,
                         testing::Values(FamilyCase{"llama3-tiny", "llama-tiny", "last_logits.npy", 1e-3},
                                         FamilyCase{"neox-tiny", "neox-tiny", "last_logits.exact.npy", 1e-3},
                                         FamilyCase{"opt-tiny", "opt-tiny", "last_logits.npy", 1e-3}),
                         case_name);

// The HF directory and the GGUF file of the same weights give the same logits at every
// position of the long prompt and the same greedy text.
TEST(FamilyForms, HuggingFaceAndGgufGiveTheSameLogits) {
  for (const auto& [dir, gguf, ref] : {std::tuple{"llama-tiny", "llama3-tiny.gguf", "llama3-tiny"},
                                       std::tuple{"neox-tiny", "neox-tiny.gguf", "neox-tiny"}}) {
    SCOPED_TRACE(dir);
    const auto hf = Model::load({test::family_path(dir), ""});
    const auto gg = Model::load({test::family_path(gguf), ""});
    const std::vector<int32_t> ids = test::load_family_ref(ref, "long").prompt_ids;
    std::vector<float> a, b;
    Session sa(hf, SessionOptions{}), sb(gg, SessionOptions{});
    sa.feed(ids, &a);
    sb.feed(ids, &b);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0.0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
    EXPECT_LE(worst, 1e-4);
    const size_t V = static_cast<size_t>(hf->config().vocab_size);
    std::span<const float> la = std::span(a).subspan(a.size() - V), lb = std::span(b).subspan(b.size() - V);
    for (int i = 0; i < 16; ++i) {
      const int32_t na = argmax(la), nb = argmax(lb);
      ASSERT_EQ(na, nb) << "greedy step " << i;
      la = sa.feed(std::span(&na, 1));
      lb = sb.feed(std::span(&nb, 1));
    }
  }
}

}  // namespace
}  // namespace h2o
