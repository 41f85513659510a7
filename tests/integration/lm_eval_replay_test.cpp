// lm-evaluation-harness's `local-completions` model replayed against `h2o serve`, request
// for request (lm_eval/models/openai_completions.py and api_models.py, TemplateLM in
// lm_eval/api/model.py): the harness cannot be installed here, so this test is the
// harness's client side written out, and the scores it gets through the server must be the
// scores `h2o eval` computes in-process on the same COPA and PIQA items.
//
// Loglikelihood: TemplateLM._encode_pair moves the context's trailing whitespace to the
// continuation, tokenizes context + continuation and the context (the Hugging Face backend
// with add_bos_token=True, which /tokenize with add_special_tokens reproduces), and takes
// the whole's tokens after the context's as the continuation; batch_loglikelihood_requests
// sends context + continuation as token ids with ctxlen = the context's length;
// _create_payload asks {"prompt": [ids], "temperature": 0, "max_tokens": 1, "logprobs": 1,
// "seed": 1234, "echo": true}; parse_logprobs sums token_logprobs[ctxlen:-1] (the last
// entry is the generated token) and calls it greedy when each of those equals the largest
// value of its top_logprobs. acc takes the choice with the largest sum, acc_norm divides by
// the choice's length in characters (without the target delimiter).
// Generation: generate_until sends {"prompt": [ids], "max_tokens", "temperature": 0,
// "stop": until + [eos], "seed": 1234} and reads choices[].text.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "integration/run_cli.h"
#include "integration/serve_harness.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

using nlohmann::json;

class LmEvalClient {
 public:
  LmEvalClient(ServeProcess& s, std::string model) : s_(s), model_(std::move(model)) {}

  std::vector<int32_t> tok_encode(const std::string& text) {
    const json r = post("/tokenize", {{"prompt", text}, {"add_special_tokens", true}});
    return r["tokens"].get<std::vector<int32_t>>();
  }

  // Returns (sum of the continuation's logprobs, is_greedy).
  std::pair<double, bool> loglikelihood(std::string context, std::string continuation) {
    const size_t keep = context.find_last_not_of(" \t\n\r\f\v");
    const size_t n_spaces = context.size() - (keep == std::string::npos ? 0 : keep + 1);
    if (n_spaces > 0) {
      continuation = context.substr(context.size() - n_spaces) + continuation;
      context = context.substr(0, context.size() - n_spaces);
    }
    const std::vector<int32_t> whole = tok_encode(context + continuation);
    const std::vector<int32_t> context_enc = tok_encode(context);
    std::vector<int32_t> inp = context_enc;
    inp.insert(inp.end(), whole.begin() + static_cast<long>(context_enc.size()), whole.end());
    const size_t ctxlen = context_enc.size();
    const json out = post("/v1/completions", {{"model", model_},
                                              {"prompt", json::array({inp})},
                                              {"temperature", 0},
                                              {"max_tokens", 1},
                                              {"logprobs", 1},
                                              {"seed", 1234},
                                              {"echo", true}});
    const json& lp = out["choices"][0]["logprobs"];
    const size_t n = lp["token_logprobs"].size();
    EXPECT_EQ(n, inp.size() + 1);  // the prompt's tokens and the generated one
    double sum = 0;
    bool greedy = true;
    for (size_t i = ctxlen; i + 1 < n; ++i) {
      const double t = lp["token_logprobs"][i];
      sum += t;
      double best = -1e300;
      for (const auto& item : lp["top_logprobs"][i].items()) best = std::max(best, item.value().get<double>());
      if (t != best) greedy = false;
    }
    return {sum, greedy};
  }

  std::string generate_until(const std::string& context, const std::vector<std::string>& until, int max_gen_toks) {
    const json out = post("/v1/completions", {{"prompt", json::array({tok_encode(context)})},
                                              {"model", model_},
                                              {"max_tokens", max_gen_toks},
                                              {"temperature", 0},
                                              {"stop", until},
                                              {"seed", 1234}});
    return out["choices"][0]["text"];
  }

 private:
  json post(const std::string& path, const json& body) {
    auto c = s_.client();
    auto r = c.Post(path, body.dump(), "application/json");
    if (!r || r->status != 200) {
      ADD_FAILURE() << path << " failed: " << (r ? r->body : "no response");
      return json::object();
    }
    return json::parse(r->body);
  }

  ServeProcess& s_;
  std::string model_;
};

struct Scores {
  double acc = 0, acc_norm = 0;
  std::vector<std::vector<double>> loglik;  // per item, per choice
};

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Scores replay(LmEvalClient& lm, const McTask& task, size_t limit) {
  Scores sc;
  for (size_t i = 0; i < limit; ++i) {
    const McItem& item = task.items[i];
    std::vector<double> lls, normed;
    for (const McChoice& ch : item.choices) {
      lls.push_back(lm.loglikelihood(ch.context, ch.continuation).first);
      // lm-eval's completion_len: the choice without the target delimiter " ".
      const std::string choice = ch.continuation.starts_with(" ") ? ch.continuation.substr(1) : ch.continuation;
      normed.push_back(lls.back() / static_cast<double>(code_points(choice)));
    }
    const auto argmax = [](const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
    sc.acc += argmax(lls) == item.label;
    sc.acc_norm += argmax(normed) == item.label;
    sc.loglik.push_back(lls);
  }
  sc.acc /= static_cast<double>(limit);
  sc.acc_norm /= static_cast<double>(limit);
  return sc;
}

struct EvalRun {
  json summary;
  std::vector<json> items;
};

EvalRun h2o_eval(const std::string& task, size_t limit, const std::vector<std::string>& kv) {
  char path[] = "/tmp/h2o_lmeval_XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  std::vector<std::string> args = {"eval",       task,
                                   "-m",         model_path("books4M-f32.gguf"),
                                   "--data-dir", shared_path("data/eval"),
                                   "--limit",    std::to_string(limit),
                                   "--json",     "-o",
                                   path,         "-t",
                                   "1"};
  args.insert(args.end(), kv.begin(), kv.end());
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EvalRun run;
  run.summary = json::parse(r.out);
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) run.items.push_back(json::parse(line));
  std::remove(path);
  return run;
}

struct Setting {
  std::string name;
  std::vector<std::string> flags;  // the same for `h2o serve` and `h2o eval`
};

TEST(LmEvalReplay, LocalCompletionsScoresEqualH2oEvalOnCopaAndPiqa) {
  // Under echo a percentage budget is a share of the prompt (the scored tokens, as in h2o
  // eval), not of the prompt and the one token the harness asks for: every score agrees.
  const std::vector<Setting> settings = {
      {"full", {"--kv-policy", "full", "--prefill-chunk", "1"}},
      {"h2o-20%", {"--kv-policy", "h2o", "--kv-budget", "20%", "--prefill-chunk", "1"}},
  };
  const std::string data = shared_path("data/eval");
  for (const Setting& st : settings) {
    SCOPED_TRACE(st.name);
    ServeProcess s(st.flags, "books4M-f32.gguf");
    ASSERT_TRUE(s.ok()) << s.stderr_text();
    LmEvalClient lm(s, "books4M-f32");
    for (const auto& [task_name, limit] : std::vector<std::pair<std::string, size_t>>{{"copa", 20}, {"piqa", 12}}) {
      SCOPED_TRACE(task_name);
      const McTask task = load_task(task_name, data);
      const Scores got = replay(lm, task, limit);
      const EvalRun want = h2o_eval(task_name, limit, st.flags);
      EXPECT_DOUBLE_EQ(got.acc, want.summary["acc"].get<double>());
      EXPECT_DOUBLE_EQ(got.acc_norm, want.summary["acc_norm"].get<double>());
      ASSERT_EQ(want.items.size(), limit);
      for (size_t i = 0; i < limit; ++i) {
        for (size_t c = 0; c < got.loglik[i].size(); ++c)
          EXPECT_NEAR(got.loglik[i][c], want.items[i]["loglik"][c].get<double>(), 1e-4)
              << "item " << i << " choice " << c;
      }
    }
    EXPECT_EQ(s.stop(), 0) << s.stderr_text();
  }
}

TEST(LmEvalReplay, GenerateUntilMatchesGreedyGeneration) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.stderr_text();
  LmEvalClient lm(s, "stories260K-f32");
  const std::string context = "Once upon a time, there was a little dog.";
  const std::string got = lm.generate_until(context, {"\n\n", ".", "</s>"}, 48);
  const CliResult g = run_cli({"generate", "-m", model_path("stories260K-f32.gguf"), "-p", context, "-n", "48",
                               "--temp", "0", "--json", "-t", "1"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string full = json::parse(g.out)["text"];
  size_t cut = full.size();
  for (const std::string stop : {"\n\n", ".", "</s>"}) cut = std::min(cut, full.find(stop));
  ASSERT_LT(cut, full.size()) << "greedy text has no stop string to test: " << full;
  EXPECT_EQ(got, full.substr(0, cut));
}

}  // namespace
}  // namespace h2o::test
