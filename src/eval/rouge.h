// ROUGE-1, ROUGE-2 and ROUGE-L (sentence-level LCS) with the conventions of Google's
// rouge-score package (rouge_score/rouge_scorer.py, tokenize.py), the scorer HELM uses for
// XSum: lower-case, every run of characters other than [a-z0-9] becomes a space, split on
// whitespace, optionally Porter-stem tokens longer than 3 characters (nltk's PorterStemmer
// in its default NLTK_EXTENSIONS mode, which rouge-score instantiates).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace h2o {

struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL;
};

// rouge-score's tokenize(text, stemmer). Non-ASCII characters are never part of a token
// (Python's lower() could map a few of them, e.g. the Kelvin sign, into [a-z]; ignored).
std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer);

// nltk.stem.porter.PorterStemmer().stem(word) for a lower-case ASCII word.
std::string porter_stem(std::string_view word);

// ROUGE-N: clipped n-gram overlap; precision over the prediction's n-grams, recall over
// the target's. F = 2PR / (P + R), 0 when both are 0.
RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n);
// ROUGE-L: longest common subsequence over the two token lists (0 if either is empty).
RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction);

// All three for one (target, prediction) pair, as RougeScorer(["rouge1", "rouge2",
// "rougeL"], use_stemmer).score(target, prediction).
RougeScores rouge_scores(std::string_view target, std::string_view prediction, bool use_stemmer);

}  // namespace h2o
