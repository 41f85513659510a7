// Task loaders (counts, lm-eval-harness prompt formats of item 0, errors naming file and
// line), the k-shot prefix, request tokenization, and evaluate()'s scoring invariants.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "eval/tasks.h"
#include "model/model.h"
#include "test_paths.h"

namespace h2o {
namespace {

std::string data_dir() { return test::shared_path("data/eval"); }

std::shared_ptr<const Model> stories() {
  static std::shared_ptr<const Model> m = Model::load({test::model_path("stories260K-f32.gguf"), ""});
  return m;
}

TEST(EvalTasks, EveryLoaderReadsItsFileWithTheRightCount) {
  const std::vector<std::tuple<std::string, size_t, size_t>> expected = {
      {"copa", 100, 2},        {"piqa", 1838, 2}, {"openbookqa", 500, 4},
      {"winogrande", 1267, 2}, {"rte", 277, 2},   {"mathqa", 2985, 5}};
  ASSERT_EQ(task_names().size(), expected.size());
  for (const auto& [name, n, n_choices] : expected) {
    const McTask t = load_task(name, data_dir());
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.items.size(), n) << name;
    for (const McItem& item : t.items) {
      ASSERT_EQ(item.choices.size(), n_choices) << name << " item " << item.id;
      EXPECT_GE(item.label, 0);
      EXPECT_LT(item.label, static_cast<int>(n_choices));
      for (const McChoice& c : item.choices) {
        EXPECT_FALSE(c.context.empty()) << name << " item " << item.id;
        EXPECT_GT(c.continuation.size(), 1u) << name << " item " << item.id;
        EXPECT_EQ(c.continuation[0], ' ') << name << " item " << item.id;  // lm-eval's target delimiter
      }
    }
  }
}

// Item 0 of each task, formatted by hand from the task's file and the lm-eval-harness
// template cited at its loader in src/eval/tasks.cpp.
TEST(EvalTasks, CopaItem0UsesTheConnectorAndLowerCasedChoices) {
  // {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
  //  "choice2": "Water flowed from the spout.", "question": "effect", "label": 1}
  const McItem it = load_task("copa", data_dir()).items[0];
  EXPECT_EQ(it.id, "0");
  EXPECT_EQ(it.label, 1);
  EXPECT_EQ(it.choices[0].context, "The man turned on the faucet therefore");
  EXPECT_EQ(it.choices[1].context, "The man turned on the faucet therefore");
  EXPECT_EQ(it.choices[0].continuation, " the toilet filled with water.");
  EXPECT_EQ(it.choices[1].continuation, " water flowed from the spout.");
  // A "cause" item uses " because".
  const McTask t = load_task("copa", data_dir());
  const auto cause = std::find_if(t.items.begin(), t.items.end(),
                                  [](const McItem& i) { return i.choices[0].context.ends_with(" because"); });
  EXPECT_NE(cause, t.items.end());
}

TEST(EvalTasks, PiqaItem0IsQuestionAnswer) {
  const McItem it = load_task("piqa", data_dir()).items[0];
  EXPECT_EQ(it.label, 0);  // first line of piqa_valid-labels.lst
  EXPECT_EQ(it.choices[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(it.choices[0].continuation,
            " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips, you will "
            "also need to supply it with a water bottle and a food dish.");
  EXPECT_EQ(
      it.choices[1].continuation,
      " Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material, you will "
      "also need to supply it with a water bottle and a food dish.");
}

TEST(EvalTasks, OpenBookQaItem0IsTheStemWithParsedChoices) {
  const McItem it = load_task("openbookqa", data_dir()).items[0];
  EXPECT_EQ(it.id, "8-343");
  EXPECT_EQ(it.label, 1);  // answer key B
  EXPECT_EQ(
      it.choices[0].context,
      "A person wants to start saving money so that they can afford a nice vacation at the end of the year. After "
      "looking over their budget and expenses, they decide the best way to save money is to");
  const std::vector<std::string> conts = {" make more phone calls", " quit eating lunch out",
                                          " buy less with monopoly money", " have lunch with friends"};
  for (size_t i = 0; i < conts.size(); ++i) EXPECT_EQ(it.choices[i].continuation, conts[i]);
}

TEST(EvalTasks, WinograndeItem0ScoresTheSharedRestOfTheSentence) {
  // "Sarah was a much better surgeon than Maria so _ always got the easier cases.", answer "2"
  const McItem it = load_task("winogrande", data_dir()).items[0];
  EXPECT_EQ(it.label, 1);
  EXPECT_EQ(it.choices[0].context, "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(it.choices[1].context, "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(it.choices[0].continuation, " always got the easier cases.");
  EXPECT_EQ(it.choices[1].continuation, " always got the easier cases.");
}

TEST(EvalTasks, RteItem0IsTrueOrFalse) {
  const McItem it = load_task("rte", data_dir()).items[0];
  EXPECT_EQ(it.label, 1);  // not_entailment -> False
  EXPECT_EQ(it.choices[0].context,
            "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the "
            "Christopher Reeve Foundation.\nQuestion: Christopher Reeve had an accident. True or False?\nAnswer:");
  EXPECT_EQ(it.choices[0].continuation, " True");
  EXPECT_EQ(it.choices[1].continuation, " False");
  EXPECT_EQ(load_task("rte", data_dir()).items[1].label, 0);  // entailment -> True
}

TEST(EvalTasks, MathQaItem0ParsesTheOptionsString) {
  // options "a ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none of these", correct "a"
  const McItem it = load_task("mathqa", data_dir()).items[0];
  EXPECT_EQ(it.label, 0);
  EXPECT_EQ(
      it.choices[0].context,
      "Question: a shopkeeper sold an article offering a discount of 5 % and earned a profit of 31.1 % . what would "
      "have been the percentage of profit earned if no discount had been offered ?\nAnswer:");
  const std::vector<std::string> conts = {" 38", " 27.675", " 30", " data inadequate", " none of these"};
  for (size_t i = 0; i < conts.size(); ++i) EXPECT_EQ(it.choices[i].continuation, conts[i]);
}

// ---- malformed files ----

class TempDir {
 public:
  TempDir() {
    path_ = ::testing::TempDir() + "h2o_eval_tasks_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + name, std::ios::binary) << text;
    return path_ + name;
  }

 private:
  std::string path_;
};

// The message of the h2o::Error that loading `task` from `dir` throws ("" if none).
std::string load_error(const std::string& task, const std::string& dir) {
  try {
    load_task(task, dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_LOAD_ERROR(task, dir, where, problem)          \
  do {                                                        \
    const std::string msg_ = load_error(task, dir);           \
    EXPECT_NE(msg_.find(where), std::string::npos) << msg_;   \
    EXPECT_NE(msg_.find(problem), std::string::npos) << msg_; \
  } while (0)

const char* kCopaOk =
    R"({"premise": "It rained.", "choice1": "A.", "choice2": "B.", "question": "effect", "label": 0})";

TEST(EvalTasks, MalformedCopaNamesFileAndLine) {
  TempDir d;
  const std::string f = d.write("copa_val.jsonl", std::string(kCopaOk) + "\n{\"premise\": oops}\n");
  EXPECT_LOAD_ERROR("copa", d.path(), f + ":2:", "bad JSON");
  d.write("copa_val.jsonl",
          std::string(kCopaOk) + "\n\n" +
              R"({"premise": "P.", "choice1": "A.", "choice2": "B.", "question": "effect", "label": 2})");
  EXPECT_LOAD_ERROR("copa", d.path(), f + ":3:", "label must be 0 or 1");
  d.write("copa_val.jsonl", R"({"premise": "P.", "choice1": "A.", "question": "effect", "label": 0})");
  EXPECT_LOAD_ERROR("copa", d.path(), f + ":1:", "missing field \"choice2\"");
  d.write("copa_val.jsonl", R"({"premise": "P.", "choice1": "A.", "choice2": "B.", "question": "why", "label": 0})");
  EXPECT_LOAD_ERROR("copa", d.path(), f + ":1:", "question must be");
  d.write("copa_val.jsonl", "[1, 2]\n");
  EXPECT_LOAD_ERROR("copa", d.path(), f + ":1:", "expected a JSON object");
}

TEST(EvalTasks, MalformedPiqaNamesFileAndLine) {
  TempDir d;
  const std::string item = R"({"goal": "g", "sol1": "a", "sol2": "b"})";
  d.write("piqa_valid.jsonl", item + "\n" + item + "\n");
  const std::string labels = d.write("piqa_valid-labels.lst", "0\n2\n");
  EXPECT_LOAD_ERROR("piqa", d.path(), labels + ":2:", "label must be 0 or 1");
  d.write("piqa_valid-labels.lst", "1\n");
  EXPECT_LOAD_ERROR("piqa", d.path(), labels + ":", "1 labels for the 2 items");
  const std::string f = d.write("piqa_valid.jsonl", item + "\n" + R"({"goal": "g", "sol1": "a", "sol2": 3})" + "\n");
  d.write("piqa_valid-labels.lst", "0\n1\n");
  EXPECT_LOAD_ERROR("piqa", d.path(), f + ":2:", "\"sol2\" must be a string");
}

TEST(EvalTasks, MalformedOpenBookQaNamesFileAndLine) {
  TempDir d;
  const std::string header = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n";
  const std::string ok = "1\tStem?\t(A) a (B) b (C) c (D) d\tStem? (A) a (B) b (C) c (D) d\tA\n";
  const std::string f = d.write("openbookqa_test.tsv", header + ok + "2\tStem?\t(A) a (B) b (C) c (D) d\tx\tE\n");
  EXPECT_LOAD_ERROR("openbookqa", d.path(), f + ":3:", "answer key \"E\"");
  d.write("openbookqa_test.tsv", header + "2\tStem?\t(A) a (B) b\tA\n");
  EXPECT_LOAD_ERROR("openbookqa", d.path(), f + ":2:", "4 columns, the header has 5");
  d.write("openbookqa_test.tsv", header + "2\tStem?\ta (B) b\tx\tA\n");
  EXPECT_LOAD_ERROR("openbookqa", d.path(), f + ":2:", "choices must start with \"(A) \"");
  d.write("openbookqa_test.tsv", "ID\tStem\n");
  EXPECT_LOAD_ERROR("openbookqa", d.path(), f + ":1:", "no column \"Question Stem\"");
}

TEST(EvalTasks, MalformedWinograndeNamesFileAndLine) {
  TempDir d;
  const std::string f =
      d.write("winogrande_dev_1267.jsonl",
              R"({"idx": 0, "sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"})"
              "\n"
              R"({"idx": 1, "sentence": "No blank.", "option1": "x", "option2": "y", "answer": "1"})");
  EXPECT_LOAD_ERROR("winogrande", d.path(), f + ":2:", "sentence has no \"_\"");
  d.write("winogrande_dev_1267.jsonl",
          R"({"idx": 0, "sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "3"})");
  EXPECT_LOAD_ERROR("winogrande", d.path(), f + ":1:", "answer must be \"1\" or \"2\"");
}

TEST(EvalTasks, MalformedRteNamesFileAndLine) {
  TempDir d;
  const std::string f = d.write("rte_val.jsonl", R"({"premise": "p", "hypothesis": "h", "label": "maybe"})");
  EXPECT_LOAD_ERROR("rte", d.path(), f + ":1:", "label must be");
  d.write("rte_val.jsonl", R"({"premise": "p", "label": 0})");
  EXPECT_LOAD_ERROR("rte", d.path(), f + ":1:", "missing field \"hypothesis\"");
}

TEST(EvalTasks, MalformedMathQaNamesTheLineOfTheElement) {
  TempDir d;
  const std::string ok = R"({"Problem": "p", "options": "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5", "correct": "b"})";
  // Element 2 starts on line 3 and has no "correct".
  const std::string f = d.write(
      "mathqa_test.json",
      "[\n  " + ok + ",\n  {\"Problem\": \"p\",\n   \"options\": \"a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5\"}\n]\n");
  EXPECT_LOAD_ERROR("mathqa", d.path(), f + ":3:", "missing field \"correct\"");
  // A syntax error on line 4 (inside the second element, which starts on line 3).
  d.write("mathqa_test.json", "[\n  " + ok + ",\n  {\"Problem\": \"p\",\n   \"options\" \"x\"}\n]\n");
  EXPECT_LOAD_ERROR("mathqa", d.path(), f + ":4:", "bad JSON");
  d.write("mathqa_test.json",
          "[" + std::string(R"({"Problem": "p", "options": "a ) 1 , b ) 2 , c ) 3 , d ) 4 ", "correct": "e"})") + "]");
  EXPECT_LOAD_ERROR("mathqa", d.path(), f + ":1:", "correct must name one of the 3 choices");
  d.write("mathqa_test.json", "[" + ok + "\n");
  EXPECT_LOAD_ERROR("mathqa", d.path(), f + ":1:", "unterminated JSON array");
  d.write("mathqa_test.json", "{}");
  EXPECT_LOAD_ERROR("mathqa", d.path(), f + ":1:", "expected a JSON array");
}

TEST(EvalTasks, MathQaOptionsFollowLmEvalsRegex) {
  // re.findall(r"[abcd] \) .*?, |e \) .*?$", s): each choice ends at the first ", ", so a
  // comma inside a choice cuts it (values checked with Python's re).
  TempDir d;
  d.write("mathqa_test.json",
          R"([{"Problem": "p", "options": "a ) 1 , 2 , b ) 3 , c ) 4 , d ) 5 , e ) 6", "correct": "b"},
  {"Problem": "p", "options": "a ) rs . 1 , b ) 2 , c ) 3 , d ) 4 , e ) none", "correct": "e"}])");
  const McTask t = load_task("mathqa", d.path());
  ASSERT_EQ(t.items.size(), 2u);
  std::vector<std::string> got;
  for (const McChoice& c : t.items[0].choices) got.push_back(c.continuation);
  EXPECT_EQ(got, (std::vector<std::string>{" 1", " 3", " 4", " 5", " 6"}));
  EXPECT_EQ(t.items[1].choices[0].continuation, " rs . 1");
  EXPECT_EQ(t.items[1].label, 4);
}

TEST(EvalTasks, MissingFileAndUnknownTaskAreErrors) {
  TempDir d;
  EXPECT_LOAD_ERROR("copa", d.path(), d.path() + "copa_val.jsonl", "cannot open");
  EXPECT_LOAD_ERROR("hellaswag", d.path(), "unknown task 'hellaswag'", "copa");
}

// ---- k-shot prefix ----

TEST(EvalFewshot, PrefixIsKOtherItemsWithTheirAnswersJoinedByBlankLines) {
  const McTask t = load_task("copa", data_dir());
  EXPECT_EQ(fewshot_prefix(t, 5, 0, 1234), "");
  const std::string p = fewshot_prefix(t, 5, 3, 1234);
  ASSERT_TRUE(p.ends_with("\n\n"));
  // Every example is some other item's context + correct continuation.
  std::vector<std::string> examples;
  for (size_t start = 0, end; (end = p.find("\n\n", start)) != std::string::npos; start = end + 2)
    examples.push_back(p.substr(start, end - start));
  ASSERT_EQ(examples.size(), 3u);
  for (const std::string& ex : examples) {
    const auto it = std::find_if(t.items.begin(), t.items.end(), [&](const McItem& i) {
      const McChoice& g = i.choices[static_cast<size_t>(i.label)];
      return g.context + g.continuation == ex;
    });
    ASSERT_NE(it, t.items.end()) << ex;
    EXPECT_NE(it - t.items.begin(), 5);
  }
  EXPECT_NE(examples[0], examples[1]);
  EXPECT_EQ(fewshot_prefix(t, 5, 3, 1234), p);  // fixed seed, same draw
  EXPECT_NE(fewshot_prefix(t, 5, 3, 99), p);
  EXPECT_NE(fewshot_prefix(t, 6, 3, 1234), p);
}

TEST(EvalFewshot, NeverDrawsTheItemItselfAndNeedsEnoughItems) {
  McTask t{"tiny", "", {}};
  for (int i = 0; i < 3; ++i) t.items.push_back({std::to_string(i), {{"c" + std::to_string(i), " x"}, {"c", " y"}}, 0});
  for (size_t item = 0; item < 3; ++item) {
    const std::string p = fewshot_prefix(t, item, 2, 7);
    EXPECT_EQ(p.find("c" + std::to_string(item) + " x"), std::string::npos) << p;
    EXPECT_EQ(p.size(), 2 * std::string("cN x\n\n").size());
  }
  EXPECT_THROW(fewshot_prefix(t, 0, 3, 7), Error);
}

// ---- request tokens ----

TEST(EvalRequest, ContinuationIsTheWholeEncodingPastTheContextsTokens) {
  const Tokenizer& tok = stories()->tokenizer();
  const std::string ctx = "The man turned on the faucet therefore", cont = " water flowed from the spout.";
  const ScoredRequest r = build_request(tok, ctx, cont, 512);
  const std::vector<int32_t> whole = tok.encode(ctx + cont, false);
  ASSERT_EQ(r.tokens.size(), whole.size() + 1);
  EXPECT_EQ(r.tokens[0], tok.bos_id());
  EXPECT_TRUE(std::equal(whole.begin(), whole.end(), r.tokens.begin() + 1));
  EXPECT_EQ(r.n_cont, whole.size() - tok.encode(ctx, false).size());
  EXPECT_GT(r.n_cont, 0u);
}

TEST(EvalRequest, TrailingContextSpacesMoveToTheContinuation) {
  const Tokenizer& tok = stories()->tokenizer();
  const ScoredRequest a = build_request(tok, "Answer: ", "True", 512), b = build_request(tok, "Answer:", " True", 512);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.n_cont, b.n_cont);
  const ScoredRequest c = build_request(tok, "Answer:\n", "True", 512), d = build_request(tok, "Answer:", "\nTrue", 512);
  EXPECT_EQ(c.tokens, d.tokens);
  EXPECT_EQ(c.n_cont, d.n_cont);
}

TEST(EvalRequest, LongContextsLoseTheirOldestTokensButKeepBos) {
  const Tokenizer& tok = stories()->tokenizer();
  std::string ctx;
  for (int i = 0; i < 40; ++i) ctx += "Once upon a time there was a little girl. ";
  const std::string cont = " She was happy.";
  const ScoredRequest full = build_request(tok, ctx, cont, 100000);
  const ScoredRequest cut = build_request(tok, ctx, cont, 64);
  ASSERT_GT(full.tokens.size(), 64u);
  ASSERT_EQ(cut.tokens.size(), 64u);
  EXPECT_EQ(cut.tokens[0], tok.bos_id());
  EXPECT_EQ(cut.n_cont, full.n_cont);
  EXPECT_TRUE(std::equal(cut.tokens.begin() + 1, cut.tokens.end(), full.tokens.end() - 63));
  EXPECT_FALSE(full.truncated);
  EXPECT_TRUE(cut.truncated);
  // A continuation that alone does not fit is scored on its last tokens.
  const ScoredRequest tiny = build_request(tok, ctx, cont, full.n_cont);
  ASSERT_EQ(tiny.tokens.size(), full.n_cont);
  EXPECT_EQ(tiny.n_cont, full.n_cont - 1);
  EXPECT_TRUE(
      std::equal(tiny.tokens.begin() + 1, tiny.tokens.end(), full.tokens.end() - static_cast<long>(full.n_cont - 1)));
}

TEST(EvalRequest, ChoiceLengthCountsCharactersWithoutTheDelimiter) {
  EXPECT_EQ(choice_length(" abc"), 3u);
  EXPECT_EQ(choice_length("abc"), 3u);
  EXPECT_EQ(choice_length(" caf\xc3\xa9"), 4u);  // "café": 4 characters, 5 bytes
  EXPECT_EQ(choice_length(" "), 1u);             // never 0
}

// ---- scoring ----

TEST(EvalScoring, SummaryAgreesWithTheItems) {
  const McTask t = load_task("copa", data_dir());
  EvalOptions opts;
  opts.session.kv.prefill_chunk = 1;
  opts.limit = 12;
  size_t progress_calls = 0;
  opts.progress = [&](size_t done, size_t total) {
    ++progress_calls;
    EXPECT_EQ(total, 12u);
    EXPECT_EQ(done, progress_calls);
  };
  std::vector<ItemResult> items;
  const EvalSummary s = evaluate(stories(), t, opts, &items);
  ASSERT_EQ(items.size(), 12u);
  EXPECT_EQ(s.n, 12u);
  EXPECT_EQ(progress_calls, 12u);
  double correct = 0, correct_norm = 0;
  for (const ItemResult& r : items) {
    ASSERT_EQ(r.loglik.size(), 2u);
    for (double ll : r.loglik) EXPECT_LT(ll, 0.0);
    EXPECT_EQ(r.pred, r.loglik[1] > r.loglik[0] ? 1 : 0);
    const double n0 = r.loglik[0] / static_cast<double>(r.cont_chars[0]),
                 n1 = r.loglik[1] / static_cast<double>(r.cont_chars[1]);
    EXPECT_EQ(r.pred_norm, n1 > n0 ? 1 : 0);
    correct += r.pred == r.label;
    correct_norm += r.pred_norm == r.label;
  }
  EXPECT_DOUBLE_EQ(s.acc, correct / 12);
  EXPECT_DOUBLE_EQ(s.acc_norm, correct_norm / 12);
  EXPECT_NEAR(s.acc_stderr, std::sqrt(s.acc * (1 - s.acc) / 11), 1e-12);
  EXPECT_GT(s.kv_bytes_peak, 0u);
}

TEST(EvalScoring, BudgetOfTheWholeSequenceEqualsFullAndSmallBudgetsBoundTheCache) {
  const McTask t = load_task("rte", data_dir());
  auto run = [&](const std::string& policy, const std::string& budget, std::vector<ItemResult>* items) {
    EvalOptions opts;
    opts.session.kv.policy = policy;
    if (!budget.empty()) opts.session.kv.budget = BudgetSpec::parse(budget, "--kv-budget");
    opts.session.kv.prefill_chunk = 1;
    opts.limit = 3;
    return evaluate(stories(), t, opts, items);
  };
  std::vector<ItemResult> full, all, small;
  const EvalSummary s_full = run("full", "", &full);
  run("h2o", "100%", &all);  // every token fits: nothing is evicted
  const EvalSummary s_small = run("h2o", "20%", &small);
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_EQ(all[i].loglik, full[i].loglik) << i;
    EXPECT_NE(small[i].loglik, full[i].loglik) << i;
  }
  EXPECT_LT(s_small.kv_bytes_peak, s_full.kv_bytes_peak / 2);
}

TEST(EvalScoring, FewShotContextsChangeTheScores) {
  const McTask t = load_task("copa", data_dir());
  EvalOptions opts;
  opts.limit = 2;
  std::vector<ItemResult> zero, two;
  evaluate(stories(), t, opts, &zero);
  opts.num_fewshot = 2;
  evaluate(stories(), t, opts, &two);
  EXPECT_NE(zero[0].loglik, two[0].loglik);
  EXPECT_EQ(zero[0].cont_chars, two[0].cont_chars);
}

}  // namespace
}  // namespace h2o
