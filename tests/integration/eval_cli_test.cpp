// `h2o eval` through the real binary: the acceptance test (with --kv-policy full, every
// per-item log-likelihood equals scoring the same tokens with `h2o perplexity --per-token`),
// the JSON summary and JSONL fields, bad input, and XSum (loader, prompt fitting, ROUGE in
// [0, 1]).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "eval/tasks.h"
#include "eval/xsum.h"
#include "integration/run_cli.h"
#include "model/model.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

const std::string kModel = "stories260K-f32.gguf";

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "h2o_eval_cli_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(read_text_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

CliResult eval_cli(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"eval", "-m", model_path(kModel), "--data-dir", shared_path("data/eval"), "-t", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_cli(args);
}

// -sum of the last n NLLs of `h2o perplexity --per-token` over the text (one window: BOS +
// the text's tokens), i.e. the log-likelihood of the text's last n tokens.
double perplexity_loglik_of_tail(const std::string& text, size_t n, const std::string& prefill_chunk) {
  const std::string file = temp_path("choice.txt");
  std::ofstream(file, std::ios::binary) << text;
  const CliResult r = run_cli({"perplexity", "-m", model_path(kModel), "-f", file, "--per-token", "--json", "--ctx",
                               "512", "--prefill-chunk", prefill_chunk, "-t", "1"});
  std::remove(file.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_windows"], 1);
  const auto& nll = j["nll"];
  EXPECT_GE(nll.size(), n);
  double sum = 0;
  for (size_t i = nll.size() - n; i < nll.size(); ++i) sum += nll[i].get<double>();
  return -sum;
}

void expect_eval_matches_perplexity(const std::string& task, int limit, const std::string& prefill_chunk) {
  const std::string out = temp_path(task + ".jsonl");
  const CliResult r = eval_cli({task, "--limit", std::to_string(limit), "--kv-policy", "full", "--prefill-chunk",
                                prefill_chunk, "--output", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = read_jsonl(out);
  std::remove(out.c_str());
  ASSERT_EQ(rows.size(), static_cast<size_t>(limit));
  const McTask t = load_task(task, shared_path("data/eval"));
  for (int i = 0; i < limit; ++i) {
    const McItem& item = t.items[static_cast<size_t>(i)];
    EXPECT_EQ(rows[static_cast<size_t>(i)]["id"], item.id);
    for (size_t c = 0; c < item.choices.size(); ++c) {
      const double ll = rows[static_cast<size_t>(i)]["loglik"][c].get<double>();
      const size_t n_cont = rows[static_cast<size_t>(i)]["cont_tokens"][c].get<size_t>();
      const double ref =
          perplexity_loglik_of_tail(item.choices[c].context + item.choices[c].continuation, n_cont, prefill_chunk);
      EXPECT_NEAR(ll, ref, 1e-6 * std::fabs(ref)) << task << " item " << i << " choice " << c;
    }
  }
}

TEST(EvalCli, FullCacheLoglikEqualsPerplexityPerTokenOnCopa) { expect_eval_matches_perplexity("copa", 3, "1"); }

TEST(EvalCli, FullCacheLoglikEqualsPerplexityPerTokenOnPiqa) {
  expect_eval_matches_perplexity("piqa", 2, "1");
  expect_eval_matches_perplexity("piqa", 1, "0");  // whole-prompt prefill too
}

TEST(EvalCli, JsonSummaryAndItemsHaveTheDocumentedFields) {
  const std::string out = temp_path("rte.jsonl");
  const CliResult r = eval_cli({"rte", "--limit", "4", "--json", "--output", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["task"], "rte");
  EXPECT_EQ(j["n"], 4);
  EXPECT_EQ(j["policy"], "full");
  EXPECT_EQ(j["prefill_chunk"], 1);  // the eval default: the paper's setting
  for (const char* k :
       {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "kv_bytes_peak", "seconds", "num_fewshot", "n_truncated"})
    EXPECT_TRUE(j.contains(k)) << k;
  const auto rows = read_jsonl(out);
  std::remove(out.c_str());
  ASSERT_EQ(rows.size(), 4u);
  double correct = 0;
  for (const auto& row : rows) {
    for (const char* k : {"id", "label", "loglik", "pred", "pred_norm", "correct"}) EXPECT_TRUE(row.contains(k)) << k;
    EXPECT_EQ(row["loglik"].size(), 2u);
    correct += row["correct"].get<bool>();
  }
  EXPECT_DOUBLE_EQ(j["acc"].get<double>(), correct / 4);
}

TEST(EvalCli, TableOutputAndBudgetFlags) {
  const CliResult full = eval_cli({"winogrande", "--limit", "3", "--json"});
  const CliResult h2o = eval_cli({"winogrande", "--limit", "3", "--json", "--kv-policy", "h2o", "--kv-budget", "30%"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  ASSERT_EQ(h2o.exit_code, 0) << h2o.err;
  EXPECT_LT(nlohmann::json::parse(h2o.out)["kv_bytes_peak"].get<double>(),
            nlohmann::json::parse(full.out)["kv_bytes_peak"].get<double>());
  const CliResult table = eval_cli({"openbookqa", "--limit", "2", "--num-fewshot", "1"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("| acc "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("1-shot"), std::string::npos) << table.out;
}

TEST(EvalCli, BadInputFailsWithOneLine) {
  const CliResult unknown = eval_cli({"hellaswag"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_LT(unknown.exit_code, 128);
  const CliResult missing = run_cli({"eval", "copa", "-m", model_path(kModel), "--data-dir", temp_path("nowhere")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("copa_val.jsonl: cannot open"), std::string::npos) << missing.err;
  const CliResult budget = eval_cli({"copa", "--limit", "1", "--kv-policy", "h2o"});
  EXPECT_EQ(budget.exit_code, 1);
  EXPECT_NE(budget.err.find("--kv-budget"), std::string::npos) << budget.err;
  const CliResult shots = eval_cli({"xsum", "--num-fewshot", "1"});
  EXPECT_EQ(shots.exit_code, 1);
}

// ---- XSum ----

TEST(Xsum, LoaderReadsTheAuthorsRequests) {
  const std::vector<XsumRequest> reqs = load_xsum(shared_path("data/eval/xsum_0shot.jsonl"));
  ASSERT_EQ(reqs.size(), 1000u);
  EXPECT_EQ(reqs[0].reference,
            "There is a \"chronic\" need for more housing for prison leavers in Wales, according to a charity.");
  EXPECT_TRUE(reqs[0].prompt.starts_with("###\nArticle: Prison Link Cymru"));
  EXPECT_EQ(reqs[0].max_tokens, 64);
  EXPECT_FLOAT_EQ(reqs[0].temperature, 0.3f);
  EXPECT_EQ(reqs[0].stop, std::vector<std::string>{"###"});
}

TEST(Xsum, MalformedRequestNamesFileAndLine) {
  const std::string file = temp_path("xsum_bad.jsonl");
  std::ofstream(file, std::ios::binary) << R"({"article": "a", "summary_gt": "s", "max_tokens": 8, "temperature": 0.3})"
                                        << "\n"
                                        << R"({"article": "a", "max_tokens": 8, "temperature": 0.3})"
                                        << "\n";
  try {
    load_xsum(file);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file + ":2: missing field \"summary_gt\""), std::string::npos) << e.what();
  }
  std::remove(file.c_str());
}

TEST(Xsum, LongArticlesAreCutToFitKeepingTheInstruction) {
  auto model = Model::load({model_path(kModel), ""});
  const std::vector<XsumRequest> reqs = load_xsum(shared_path("data/eval/xsum_0shot.jsonl"));
  const int ctx = model->config().context_length;
  bool truncated = false;
  const std::string p = fit_prompt(model->tokenizer(), reqs[0].prompt, 64, ctx, &truncated);
  EXPECT_TRUE(truncated);
  EXPECT_LE(static_cast<int>(model->tokenizer().encode(p, true).size()) + 64, ctx);
  EXPECT_GT(static_cast<int>(model->tokenizer().encode(p, true).size()) + 64, ctx - 20);  // as long as fits
  EXPECT_TRUE(p.starts_with("###\nArticle: Prison Link Cymru"));
  EXPECT_TRUE(p.ends_with("\n\nSummarize the above article in 1 sentence.\n"));
  EXPECT_TRUE(reqs[0].prompt.starts_with(p.substr(0, p.rfind("\n\n"))));
  EXPECT_EQ(fit_prompt(model->tokenizer(), "###\nArticle: Short.\n\nSummarize.\n", 64, ctx, &truncated),
            "###\nArticle: Short.\n\nSummarize.\n");
  EXPECT_FALSE(truncated);
}

TEST(XsumCli, LimitTwoGivesRougeInTheUnitInterval) {
  const std::string out = temp_path("xsum.jsonl");
  const CliResult r =
      eval_cli({"xsum", "--limit", "2", "--json", "--output", out, "--kv-policy", "h2o", "--kv-budget", "50%"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n"], 2);
  for (const char* k : {"rouge1", "rouge2", "rougeL"}) {
    EXPECT_GE(j[k].get<double>(), 0.0) << k;
    EXPECT_LE(j[k].get<double>(), 1.0) << k;
  }
  EXPECT_GT(j["rouge1"].get<double>(), 0.0);  // stories share common words with any summary
  const auto rows = read_jsonl(out);
  std::remove(out.c_str());
  ASSERT_EQ(rows.size(), 2u);
  double r1 = 0;
  for (const auto& row : rows) {
    EXPECT_FALSE(row["summary"].get<std::string>().empty());
    EXPECT_EQ(row["summary"].get<std::string>().find("###"), std::string::npos);
    r1 += row["rouge1"]["fmeasure"].get<double>();
  }
  EXPECT_NEAR(j["rouge1"].get<double>(), r1 / 2, 1e-12);
  // Same seed, same summaries.
  const CliResult again = eval_cli({"xsum", "--limit", "2", "--json", "--kv-policy", "h2o", "--kv-budget", "50%"});
  EXPECT_EQ(nlohmann::json::parse(again.out)["rouge1"], j["rouge1"]);
}

}  // namespace
}  // namespace h2o::test
