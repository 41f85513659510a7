#include "eval/xsum.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"
#include "common/text_file.h"
#include "runtime/generate.h"

namespace h2o {
namespace {

using nlohmann::json;

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

XsumRequest parse_request(const std::string& text, const std::string& path, size_t line, size_t index) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}:{}: bad JSON: {}", path, line, e.what());
  }
  auto where = [&](const std::string& problem) -> std::string { return fmt::format("{}:{}: {}", path, line, problem); };
  if (!j.is_object()) throw Error(where("expected a JSON object"));
  auto field = [&](const char* key) -> const json& {
    auto it = j.find(key);
    if (it == j.end()) throw Error(where(fmt::format("missing field \"{}\"", key)));
    return *it;
  };
  auto string_field = [&](const char* key) {
    const json& v = field(key);
    if (!v.is_string()) throw Error(where(fmt::format("field \"{}\" must be a string", key)));
    return v.get<std::string>();
  };
  XsumRequest r;
  r.id = std::to_string(index);
  r.prompt = string_field("article");
  r.reference = string_field("summary_gt");
  const json& mt = field("max_tokens");
  if (!mt.is_number_integer() || mt.get<long long>() < 1 || mt.get<long long>() > (1 << 20))
    throw Error(where(fmt::format("max_tokens must be a positive integer, got {}", mt.dump())));
  r.max_tokens = mt.get<int>();
  const json& temp = field("temperature");
  if (!temp.is_number() || temp.get<double>() < 0)
    throw Error(where(fmt::format("temperature must be >= 0, got {}", temp.dump())));
  r.temperature = temp.get<float>();
  if (j.contains("top_p")) {
    const json& tp = j.at("top_p");
    if (!tp.is_number() || tp.get<double>() <= 0 || tp.get<double>() > 1)
      throw Error(where(fmt::format("top_p must be in (0, 1], got {}", tp.dump())));
    r.top_p = tp.get<float>();
  }
  if (j.contains("stop")) {
    const json& stop = j.at("stop");
    if (!stop.is_array()) throw Error(where("stop must be a list of strings"));
    for (const json& s : stop) {
      if (!s.is_string() || s.get<std::string>().empty())
        throw Error(where("stop must be a list of non-empty strings"));
      r.stop.push_back(s.get<std::string>());
    }
  }
  return r;
}

}  // namespace

std::vector<XsumRequest> load_xsum(const std::string& path) {
  std::istringstream in(read_text_file(path, "XSum requests file"));
  std::vector<XsumRequest> out;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_request(line, path, n, out.size()));
  }
  if (out.empty()) fail("{}: no requests", path);
  return out;
}

std::string fit_prompt(const Tokenizer& tok, const std::string& prompt, int max_tokens, int context_length,
                       bool* truncated) {
  auto fits = [&](const std::string& p) {
    return static_cast<long>(tok.encode(p, true).size()) + max_tokens <= static_cast<long>(context_length);
  };
  if (truncated) *truncated = false;
  if (fits(prompt)) return prompt;
  // The instruction after the article's last blank line is kept whole; the article is cut.
  const size_t split = prompt.rfind("\n\n");
  const std::string head = split == std::string::npos ? prompt : prompt.substr(0, split);
  const std::string tail = split == std::string::npos ? std::string() : prompt.substr(split);
  std::vector<size_t> cuts{0};  // word boundaries: the article is cut before a space
  for (size_t i = 1; i < head.size(); ++i)
    if ((head[i] == ' ' || head[i] == '\n') && head[i - 1] != ' ' && head[i - 1] != '\n') cuts.push_back(i);
  // Largest cut that fits (the token count grows with the cut, so bisect).
  if (!fits(tail))
    fail("the XSum prompt's instruction alone plus {} tokens exceeds the model's context of {}", max_tokens,
         context_length);
  size_t lo = 0, hi = cuts.size() - 1;  // cuts[lo] fits
  while (lo < hi) {
    const size_t mid = (lo + hi + 1) / 2;
    if (fits(head.substr(0, cuts[mid]) + tail))
      lo = mid;
    else
      hi = mid - 1;
  }
  if (truncated) *truncated = true;
  return head.substr(0, cuts[lo]) + tail;
}

XsumSummary evaluate_xsum(std::shared_ptr<const Model> model, const std::vector<XsumRequest>& requests,
                          const XsumOptions& opts, std::vector<XsumItemResult>* items) {
  const size_t n = opts.limit > 0 ? std::min(opts.limit, requests.size()) : requests.size();
  if (n == 0) fail("xsum: no requests to evaluate");
  resolve_kv(opts.session.kv, 1000);  // bad settings fail before any work
  const int ctx = model->config().context_length;
  XsumSummary sum;
  sum.n = n;
  const auto t0 = std::chrono::steady_clock::now();
  auto add = [](RougeScore& acc, const RougeScore& s) {
    acc.precision += s.precision;
    acc.recall += s.recall;
    acc.fmeasure += s.fmeasure;
  };
  for (size_t i = 0; i < n; ++i) {
    const XsumRequest& req = requests[i];
    XsumItemResult res;
    res.id = req.id;
    res.reference = req.reference;
    const int max_tokens = std::min(req.max_tokens, ctx - 2);
    GenerateOptions g;
    g.prompt = fit_prompt(model->tokenizer(), req.prompt, max_tokens, ctx, &res.truncated);
    g.n_predict = max_tokens;
    // top_k 0: off, as run_summarization.py samples (top_k=0, the request's top_p).
    g.sampling = {opts.temperature.value_or(req.temperature), 0, req.top_p, opts.seed + i};
    g.session = opts.session;
    const GenerateResult r = generate(model, g);
    // generate() has no stop strings: the full max_tokens are produced and the text is cut
    // at the first stop sequence afterwards (what follows it cannot change what precedes).
    std::string text = r.text;
    res.stop_reason = r.stop_reason;
    size_t cut = std::string::npos;
    for (const std::string& s : req.stop) cut = std::min(cut, text.find(s));
    if (cut != std::string::npos) {
      text.resize(cut);
      res.stop_reason = "stop";
    }
    res.summary = strip(text);
    res.prompt_tokens = static_cast<int>(r.prompt_tokens.size());
    res.rouge = rouge_scores(req.reference, res.summary, opts.use_stemmer);
    add(sum.mean.rouge1, res.rouge.rouge1);
    add(sum.mean.rouge2, res.rouge.rouge2);
    add(sum.mean.rougeL, res.rouge.rougeL);
    sum.n_truncated += res.truncated;
    sum.kv_bytes_peak = std::max(sum.kv_bytes_peak, r.kv_bytes_peak);
    if (items) items->push_back(std::move(res));
    if (opts.progress) opts.progress(i + 1, n);
  }
  for (RougeScore* s : {&sum.mean.rouge1, &sum.mean.rouge2, &sum.mean.rougeL}) {
    s->precision /= static_cast<double>(n);
    s->recall /= static_cast<double>(n);
    s->fmeasure /= static_cast<double>(n);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace h2o
