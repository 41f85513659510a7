// ROUGE against the published expected values of Google's rouge-score package
// (google-research/google-research, rouge/rouge_scorer_test.py and rouge/tokenize_test.py;
// the ROUGE-1.5.5 "ground truth" there comes from runs of the original Perl script on
// rouge/testdata/target.txt and prediction.txt) and the Porter stemmer against nltk's
// doctest (nltk/test/stem.doctest, default NLTK_EXTENSIONS mode).
#include "eval/rouge.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace h2o {
namespace {

// rouge_scorer_test.py compares with assertAlmostEqual(..., 5): 5 decimal places.
constexpr double kPlaces5 = 5e-6;

void expect_score(const RougeScore& s, double p, double r, double f, double tol = 1e-12) {
  EXPECT_NEAR(s.precision, p, tol);
  EXPECT_NEAR(s.recall, r, tol);
  EXPECT_NEAR(s.fmeasure, f, tol);
}

TEST(Rouge, TokenizeLowerCasesAndSplitsOnNonAlphanumerics) {
  // tokenize_test.py
  EXPECT_EQ(rouge_tokenize("one Two three", false), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(rouge_tokenize("one\n Two \nthree", false), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(rouge_tokenize("It's 3:45, don't-stop!", false),
            (std::vector<std::string>{"it", "s", "3", "45", "don", "t", "stop"}));
  EXPECT_EQ(rouge_tokenize("/ --- \xc3\xa9", false), std::vector<std::string>{});  // no [a-z0-9]: no tokens
  // Only tokens longer than 3 characters are stemmed.
  EXPECT_EQ(rouge_tokenize("Dies ties lies running", true), (std::vector<std::string>{"die", "tie", "lie", "run"}));
  EXPECT_EQ(rouge_tokenize("was has", true), (std::vector<std::string>{"was", "has"}));
}

TEST(Rouge, SimpleCasesFromRougeScorerTest) {
  // testRouge1
  expect_score(rouge_scores("testing one two", "testing", false).rouge1, 1.0, 1.0 / 3, 0.5);
  // testRouge2
  expect_score(rouge_scores("testing one two", "testing one", false).rouge2, 1.0, 0.5, 2.0 / 3);
  // testRougeLConsecutive, testRougeLNonConsecutive
  expect_score(rouge_scores("testing one two", "testing one", false).rougeL, 1.0, 2.0 / 3, 0.8);
  expect_score(rouge_scores("testing one two", "testing two", false).rougeL, 1.0, 2.0 / 3, 0.8);
  // testMultipleRougeTypes
  const RougeScores m = rouge_scores("testing one two", "testing one", false);
  expect_score(m.rouge1, 1.0, 2.0 / 3, 0.8);
  expect_score(m.rougeL, 1.0, 2.0 / 3, 0.8);
  // testRougeEmpty
  const RougeScores e = rouge_scores("testing one two", "", false);
  for (const RougeScore& s : {e.rouge1, e.rouge2, e.rougeL}) expect_score(s, 0, 0, 0);
}

// rouge/testdata/target.txt and prediction.txt, lines 1 and 2, as readlines() gives them.
const char* kTarget0 =
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion "
    "wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n";
const char* kTarget1 =
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
    "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw "
    "p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n";
const char* kPrediction0 = "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n";
const char* kPrediction1 =
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
    "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n";

TEST(Rouge, Rouge1AgainstRouge155) {
  expect_score(rouge_scores(kTarget0, kPrediction0, false).rouge1, 0.68750, 0.40741, 0.51163, kPlaces5);
  expect_score(rouge_scores(kTarget1, kPrediction1, false).rouge1, 0.65385, 0.40476, 0.50000, kPlaces5);
}

TEST(Rouge, Rouge1AgainstRouge155WithStemming) {
  expect_score(rouge_scores(kTarget0, kPrediction0, true).rouge1, 0.68750, 0.40741, 0.51163, kPlaces5);
  expect_score(rouge_scores(kTarget1, kPrediction1, true).rouge1, 0.69231, 0.42857, 0.52941, kPlaces5);
}

TEST(Rouge, Rouge2AgainstRouge155WithAndWithoutStemming) {
  for (bool stem : {false, true}) {
    expect_score(rouge_scores(kTarget0, kPrediction0, stem).rouge2, 0.53333, 0.30769, 0.39024, kPlaces5);
    expect_score(rouge_scores(kTarget1, kPrediction1, stem).rouge2, 0.48000, 0.29268, 0.36364, kPlaces5);
  }
}

TEST(Rouge, RougeLAgainstRouge155) {
  expect_score(rouge_scores(kTarget0, kPrediction0, false).rougeL, 0.68750, 0.40741, 0.51163, kPlaces5);
  expect_score(rouge_scores(kTarget1, kPrediction1, false).rougeL, 0.65385, 0.40476, 0.50000, kPlaces5);
}

TEST(Rouge, LcsIsASubsequenceNotASubstring) {
  // testLcsTable: ref [1 2 3 4 5], candidate [2 5 3 4] -> LCS 3 ([2 3 4]).
  const std::vector<std::string> ref{"1", "2", "3", "4", "5"}, can{"2", "5", "3", "4"};
  expect_score(rouge_l(ref, can), 3.0 / 4, 3.0 / 5, 2 * 0.75 * 0.6 / 1.35);
  expect_score(rouge_l(ref, {"8", "9"}), 0, 0, 0);
  expect_score(rouge_l({}, can), 0, 0, 0);
}

TEST(Rouge, NgramCountsAreClipped) {
  // "the the the" against "the": one unigram matches (min of the counts).
  expect_score(rouge_n({"the"}, {"the", "the", "the"}, 1), 1.0 / 3, 1.0, 0.5);
  expect_score(rouge_n({"a", "b"}, {"a"}, 2), 0, 0, 0);  // the prediction has no bigram
  EXPECT_THROW(rouge_n({"a"}, {"a"}, 0), Error);
}

TEST(Rouge, PorterStemmerMatchesNltkDoctest) {
  const std::vector<std::string> plurals = {"caresses",    "flies",     "dies",      "mules",       "denied",
                                            "died",        "agreed",    "owned",     "humbled",     "sized",
                                            "meeting",     "stating",   "siezing",   "itemization", "sensational",
                                            "traditional", "reference", "colonizer", "plotted"};
  const std::vector<std::string> singles = {"caress", "fli",    "die",   "mule",  "deni",  "die",  "agre",
                                            "own",    "humbl",  "size",  "meet",  "state", "siez", "item",
                                            "sensat", "tradit", "refer", "colon", "plot"};
  ASSERT_EQ(plurals.size(), singles.size());
  for (size_t i = 0; i < plurals.size(); ++i) EXPECT_EQ(porter_stem(plurals[i]), singles[i]) << plurals[i];
}

TEST(Rouge, PorterStemmerNltkExtensions) {
  // NLTK_EXTENSIONS departures from the 1980 paper, as documented in nltk/stem/porter.py.
  EXPECT_EQ(porter_stem("generously"), "gener");  // stem.doctest: SnowballStemmer("porter") agrees
  EXPECT_EQ(porter_stem("skies"), "sky");         // irregular forms
  EXPECT_EQ(porter_stem("dying"), "die");
  EXPECT_EQ(porter_stem("news"), "news");
  EXPECT_EQ(porter_stem("happy"), "happi");  // y -> i after a consonant
  EXPECT_EQ(porter_stem("enjoy"), "enjoy");
  EXPECT_EQ(porter_stem("is"), "is");  // words of 1-2 letters are left alone
}

}  // namespace
}  // namespace h2o
