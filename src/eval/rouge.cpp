#include "eval/rouge.h"

#include <algorithm>
#include <array>
#include <functional>
#include <unordered_map>

#include "common/check.h"

namespace h2o {
namespace {

// ---- Porter stemmer (M. F. Porter 1980, with nltk's NLTK_EXTENSIONS departures) ----

bool is_consonant(const std::string& w, size_t i) {
  switch (w[i]) {
    case 'a':
    case 'e':
    case 'i':
    case 'o':
    case 'u':
      return false;
    case 'y':
      return i == 0 || !is_consonant(w, i - 1);  // y after a consonant is a vowel
    default:
      return true;
  }
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::string& stem) {
  int m = 0;
  for (size_t i = 1; i < stem.size(); ++i) m += !is_consonant(stem, i - 1) && is_consonant(stem, i);
  return m;
}

bool contains_vowel(const std::string& stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_with(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() && std::string_view(w).substr(w.size() - suffix.size()) == suffix;
}

bool ends_double_consonant(const std::string& w) {
  const size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1);
}

// Condition *o: the stem ends consonant-vowel-consonant, the last not w, x or y (nltk also
// accepts a two-letter vowel-consonant stem).
bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

std::string replace_suffix(const std::string& w, size_t suffix_len, std::string_view replacement) {
  return w.substr(0, w.size() - suffix_len) + std::string(replacement);
}

using Condition = std::function<bool(const std::string& stem)>;
struct Rule {
  std::string_view suffix;  // "*d": any double consonant
  std::string replacement;
  Condition condition;  // empty: unconditional
};

// The first rule whose suffix matches decides: its replacement if its condition holds on
// the stem, else the word unchanged (later rules are not tried).
std::string apply_rules(const std::string& w, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    size_t len = 0;
    if (r.suffix == "*d") {
      if (!ends_double_consonant(w)) continue;
      len = 2;
    } else if (ends_with(w, r.suffix)) {
      len = r.suffix.size();
    } else {
      continue;
    }
    const std::string stem = w.substr(0, w.size() - len);
    return !r.condition || r.condition(stem) ? stem + r.replacement : w;
  }
  return w;
}

bool m_gt0(const std::string& s) { return measure(s) > 0; }
bool m_gt1(const std::string& s) { return measure(s) > 1; }

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return replace_suffix(w, 3, "ie");  // nltk: dies -> die
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return replace_suffix(w, 3, w.size() == 4 ? "ie" : "i");  // nltk: died -> die
  if (ends_with(w, "eed")) {
    const std::string stem = w.substr(0, w.size() - 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suffix)) {
      stem = w.substr(0, w.size() - suffix.size());
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return w;
  const char last = stem.back();
  return apply_rules(stem, {{"at", "ate", {}},
                            {"bl", "ble", {}},
                            {"iz", "ize", {}},
                            {"*d", std::string(1, last),
                             [last](const std::string&) { return last != 'l' && last != 's' && last != 'z'; }},
                            {"", "e", [](const std::string& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  // nltk: y -> i only after a consonant that is not the whole stem (happy -> happi, enjoy stays).
  return apply_rules(w,
                     {{"y", "i", [](const std::string& s) { return s.size() > 1 && is_consonant(s, s.size() - 1); }}});
}

std::string step2(const std::string& w) {
  // nltk applies alli -> al first and then step 2 again.
  if (ends_with(w, "alli") && measure(w.substr(0, w.size() - 4)) > 0) return step2(replace_suffix(w, 4, "al"));
  const std::string word = w;
  return apply_rules(
      w, {{"ational", "ate", m_gt0},
          {"tional", "tion", m_gt0},
          {"enci", "ence", m_gt0},
          {"anci", "ance", m_gt0},
          {"izer", "ize", m_gt0},
          {"bli", "ble", m_gt0},
          {"alli", "al", m_gt0},
          {"entli", "ent", m_gt0},
          {"eli", "e", m_gt0},
          {"ousli", "ous", m_gt0},
          {"ization", "ize", m_gt0},
          {"ation", "ate", m_gt0},
          {"ator", "ate", m_gt0},
          {"alism", "al", m_gt0},
          {"iveness", "ive", m_gt0},
          {"fulness", "ful", m_gt0},
          {"ousness", "ous", m_gt0},
          {"aliti", "al", m_gt0},
          {"iviti", "ive", m_gt0},
          {"biliti", "ble", m_gt0},
          {"fulli", "ful", m_gt0},
          // logi -> log with the "l" counted in the stem (geo-logi -> geolog).
          {"logi", "log", [&word](const std::string&) { return measure(word.substr(0, word.size() - 3)) > 0; }}});
}

std::string step3(const std::string& w) {
  return apply_rules(w, {{"icate", "ic", m_gt0},
                         {"ative", "", m_gt0},
                         {"alize", "al", m_gt0},
                         {"iciti", "ic", m_gt0},
                         {"ical", "ic", m_gt0},
                         {"ful", "", m_gt0},
                         {"ness", "", m_gt0}});
}

std::string step4(const std::string& w) {
  return apply_rules(
      w, {{"al", "", m_gt1},
          {"ance", "", m_gt1},
          {"ence", "", m_gt1},
          {"er", "", m_gt1},
          {"ic", "", m_gt1},
          {"able", "", m_gt1},
          {"ible", "", m_gt1},
          {"ant", "", m_gt1},
          {"ement", "", m_gt1},
          {"ment", "", m_gt1},
          {"ent", "", m_gt1},
          {"ion", "", [](const std::string& s) { return measure(s) > 1 && (s.back() == 's' || s.back() == 't'); }},
          {"ou", "", m_gt1},
          {"ism", "", m_gt1},
          {"ate", "", m_gt1},
          {"iti", "", m_gt1},
          {"ous", "", m_gt1},
          {"ive", "", m_gt1},
          {"ize", "", m_gt1}});
}

std::string step5a(const std::string& w) {
  // Both e-rules are tried (the paper's examples need it), unlike apply_rules.
  if (!ends_with(w, "e")) return w;
  const std::string stem = w.substr(0, w.size() - 1);
  const int m = measure(stem);
  return m > 1 || (m == 1 && !ends_cvc(stem)) ? stem : w;
}

std::string step5b(const std::string& w) {
  const std::string word = w;
  return apply_rules(
      w, {{"ll", "l", [&word](const std::string&) { return measure(word.substr(0, word.size() - 1)) > 1; }}});
}

// nltk's irregular forms (NLTK_EXTENSIONS), mapped before any step.
const std::unordered_map<std::string_view, std::string_view>& irregular_forms() {
  static const std::unordered_map<std::string_view, std::string_view> forms{
      {"sky", "sky"},        {"skies", "sky"},       {"dying", "die"},        {"lying", "lie"},
      {"tying", "tie"},      {"news", "news"},       {"innings", "inning"},   {"inning", "inning"},
      {"outings", "outing"}, {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},      {"proceed", "proceed"}, {"exceed", "exceed"},    {"succeed", "succeed"}};
  return forms;
}

// ---- scores ----

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

std::unordered_map<std::string, int> ngram_counts(const std::vector<std::string>& tokens, int n) {
  std::unordered_map<std::string, int> counts;
  const size_t un = static_cast<size_t>(n);
  for (size_t i = 0; i + un <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t j = 1; j < un; ++j) key += ' ' + tokens[i + j];  // tokens never hold spaces
    ++counts[key];
  }
  return counts;
}

}  // namespace

std::string porter_stem(std::string_view word) {
  if (auto it = irregular_forms().find(word); it != irregular_forms().end()) return std::string(it->second);
  std::string w(word);
  if (w.size() <= 2) return w;  // nltk leaves 1- and 2-letter words alone
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  return step5b(w);
}

std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer) {
  std::vector<std::string> tokens;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    // Only words longer than 3 characters are stemmed (rouge-score's rule).
    tokens.push_back(use_stemmer && cur.size() > 3 ? porter_stem(cur) : cur);
    if (tokens.back().empty()) tokens.pop_back();
    cur.clear();
  };
  for (char ch : text) {
    const char c = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
      cur += c;
    else
      flush();
  }
  flush();
  return tokens;
}

RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n) {
  if (n < 1) fail("rouge-n: n must be at least 1, got {}", n);
  const auto t = ngram_counts(target, n), p = ngram_counts(prediction, n);
  long overlap = 0, t_total = 0, p_total = 0;
  for (const auto& [gram, count] : t) {
    t_total += count;
    if (auto it = p.find(gram); it != p.end()) overlap += std::min(count, it->second);
  }
  for (const auto& kv : p) p_total += kv.second;
  RougeScore s;
  s.precision = static_cast<double>(overlap) / static_cast<double>(std::max(p_total, 1L));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max(t_total, 1L));
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  if (target.empty() || prediction.empty()) return {};
  // LCS length by dynamic programming, one row at a time.
  std::vector<size_t> prev(prediction.size() + 1, 0), cur(prediction.size() + 1, 0);
  for (size_t i = 1; i <= target.size(); ++i) {
    for (size_t j = 1; j <= prediction.size(); ++j)
      cur[j] = target[i - 1] == prediction[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double lcs = static_cast<double>(prev.back());
  RougeScore s;
  s.precision = lcs / static_cast<double>(prediction.size());
  s.recall = lcs / static_cast<double>(target.size());
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

RougeScores rouge_scores(std::string_view target, std::string_view prediction, bool use_stemmer) {
  const auto t = rouge_tokenize(target, use_stemmer), p = rouge_tokenize(prediction, use_stemmer);
  return {rouge_n(t, p, 1), rouge_n(t, p, 2), rouge_l(t, p)};
}

}  // namespace h2o
