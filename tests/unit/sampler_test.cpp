// argmax (greedy decoding's choice) against the one-pass definition: the first index whose
// logit is strictly greater than every earlier one's, on vectors built to catch a
// vectorised search out: ties, signed zeros, infinities, NaN anywhere, every length near
// the eight-lane block, and a vocabulary-sized row.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace h2o {
namespace {

int32_t first_strictly_greatest(const std::vector<float>& v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

TEST(Argmax, MatchesTheOnePassDefinitionOnAwkwardRows) {
  std::mt19937 rng(7);
  const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f};
  std::uniform_int_distribution<int> coarse(-3, 3);  // few distinct values: many ties
  std::uniform_int_distribution<int> pick(0, 20);
  int checked = 0;
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{8}, size_t{9}, size_t{15}, size_t{16}, size_t{17},
                   size_t{33}, size_t{100}, size_t{32000}}) {
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> v(n);
      for (float& x : v) {
        const int k = pick(rng);
        x = k < 7 ? specials[k] : static_cast<float>(coarse(rng));
      }
      ASSERT_EQ(argmax(v), first_strictly_greatest(v)) << "n=" << n << " trial=" << trial;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 12 * 200);
  // A NaN first wins (nothing compares greater), as in the one-pass loop.
  EXPECT_EQ(argmax(std::vector<float>{NAN, 5.0f, 9.0f}), 0);
  EXPECT_EQ(argmax(std::vector<float>{-0.0f, 0.0f, -1.0f}), 0);
  EXPECT_EQ(argmax(std::vector<float>(40, -INFINITY)), 0);
  std::vector<float> row(32000, -2.0f);
  row[31999] = 3.0f;
  EXPECT_EQ(argmax(row), 31999);
  row[12345] = 3.0f;
  EXPECT_EQ(argmax(row), 12345);
}

}  // namespace
}  // namespace h2o
