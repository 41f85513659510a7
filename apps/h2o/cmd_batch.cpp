// `h2o batch -m MODEL -f PROMPTS [-o OUT.jsonl] [--parallel N] [-n N] [sampling] [kv flags]`:
// generates for every prompt of a file, N sequences at a time through the continuous
// batching engine, and writes one JSON line per prompt in input order. PROMPTS is one
// prompt per line (blank lines skipped), or JSONL (`--jsonl` or a .jsonl name) with
// per-prompt settings (runtime/batch_input.h). A prompt that fails (bad settings, longer
// than the context) gets an "error" line; the others complete, and the command exits 1
// after writing everything.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_options.h"
#include "commands.h"
#include "common/check.h"
#include "progress.h"
#include "runtime/batch_engine.h"
#include "runtime/batch_input.h"

namespace h2o::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BatchFlags {
  ModelFlags model;
  KvFlags kv;
  std::string file;
  std::string out;
  bool jsonl = false;
  int parallel = 8;
  int max_step_tokens = 512;
  int n_predict = 256;
  SamplingFlags sampling;
  int threads = 1;
  bool ignore_eos = false;
};

std::vector<PromptSpec> read_prompts(const BatchFlags& f, const PromptSpec& defaults) {
  const bool jsonl = f.jsonl || (f.file.size() > 6 && f.file.ends_with(".jsonl"));
  std::vector<PromptSpec> out = parse_prompt_file(read_text_file(f.file, "prompt file"), jsonl, defaults);
  if (out.empty()) fail("{}: no prompts (one per line{})", f.file, jsonl ? ", as JSON objects" : "");
  return out;
}

struct Running {
  size_t index = 0;
  int32_t prev = 0;
  std::vector<int32_t> tokens;
  std::string text;
  Clock::time_point start;
  double ttft_s = 0.0;
};

class OrderedWriter {
 public:
  OrderedWriter(std::FILE* out, size_t n) : out_(out), lines_(n) {}
  void put(size_t index, const nlohmann::json& j) {
    lines_[index] = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    while (next_ < lines_.size() && lines_[next_]) {
      std::fprintf(out_, "%s\n", lines_[next_]->c_str());
      lines_[next_].reset();
      ++next_;
    }
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  std::vector<std::optional<std::string>> lines_;
  size_t next_ = 0;
};

void run_batch(const BatchFlags& f) {
  PromptSpec defaults;
  defaults.n_predict = f.n_predict;
  defaults.ignore_eos = f.ignore_eos;
  defaults.sampling = f.sampling.params();
  defaults.kv = f.kv.settings();
  const std::vector<PromptSpec> prompts = read_prompts(f, defaults);
  auto model = f.model.load();
  const Tokenizer& tok = model->tokenizer();

  std::FILE* out = stdout;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, &std::fclose);
  if (!f.out.empty()) {
    file.reset(std::fopen(f.out.c_str(), "wb"));
    if (!file) fail("{}: cannot open for writing", f.out);
    out = file.get();
  }
  OrderedWriter writer(out, prompts.size());

  BatchOptions bo;
  bo.threads = f.threads;
  bo.max_sequences = f.parallel;
  bo.max_step_tokens = f.max_step_tokens;
  BatchEngine engine(model, bo);
  std::map<uint64_t, Running> running;
  size_t next = 0, done = 0, failed = 0;
  uint64_t generated = 0;
  size_t kv_peak = 0;
  ProgressBar bar("batch");
  const auto t0 = Clock::now();
  const auto finish_error = [&](size_t i, const std::string& message) {
    writer.put(i, {{"index", i}, {"id", prompts[i].id}, {"error", message}});
    ++failed;
    ++done;
  };

  while (next < prompts.size() || !engine.empty()) {
    while (next < prompts.size() && !engine.full()) {
      const size_t i = next++;
      const PromptSpec& p = prompts[i];
      if (!p.error.empty()) {
        finish_error(i, p.error);
        continue;
      }
      try {
        SequenceRequest r;
        r.prompt = tok.encode(p.prompt, true);
        r.max_tokens = p.n_predict;
        r.ignore_eos = p.ignore_eos;
        r.sampling = p.sampling;
        r.kv = p.kv;
        const int32_t last = r.prompt.back();
        const uint64_t id = engine.add(std::move(r));
        running[id] = Running{i, last, {}, {}, Clock::now(), 0.0};
      } catch (const Error& e) {
        finish_error(i, e.what());
      }
    }
    if (engine.empty()) continue;
    const std::vector<SequenceEvent> events = engine.step();
    kv_peak = std::max(kv_peak, engine.stats().kv_bytes_in_step);
    for (const SequenceEvent& e : events) {
      Running& r = running.at(e.id);
      if (e.token >= 0) {
        if (r.tokens.empty()) r.ttft_s = std::chrono::duration<double>(Clock::now() - r.start).count();
        r.text += tok.decode_piece(r.prev, e.token);
        r.tokens.push_back(e.token);
        r.prev = e.token;
        ++generated;
      }
      if (!e.finished) continue;
      const PromptSpec& p = prompts[r.index];
      const double latency = std::chrono::duration<double>(Clock::now() - r.start).count();
      writer.put(r.index, {{"index", r.index},
                           {"id", p.id},
                           {"prompt", p.prompt},
                           {"text", r.text},
                           {"tokens", r.tokens},
                           {"n_prompt", e.n_prompt},
                           {"n_generated", r.tokens.size()},
                           {"stop_reason", e.stop_reason},
                           {"kv_policy", p.kv.describe()},
                           {"kv_type", kv_type_name(p.kv.type)},
                           {"kv_positions", kv_positions_name(p.kv.positions)},
                           {"kv_bytes", e.kv_bytes},
                           {"kv_bytes_peak", e.kv_bytes_peak},
                           {"latency_ms", latency * 1e3},
                           {"ttft_ms", r.ttft_s * 1e3}});
      running.erase(e.id);
      ++done;
    }
    bar.update(done, prompts.size());
  }
  bar.finish();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "%s\n",
               fmt::format("batch: {} prompts ({} failed), {} at a time, generated {} tok in {:.2f} s ({:.1f} tok/s), "
                           "KV peak {} bytes over the live sequences",
                           prompts.size(), failed, f.parallel, generated, secs,
                           secs > 0 ? static_cast<double>(generated) / secs : 0.0, kv_peak)
                   .c_str());
  if (failed > 0) fail("{} of {} prompts failed (see their \"error\" lines)", failed, prompts.size());
}

}  // namespace

void register_batch(CLI::App& app) {
  auto f = std::make_shared<BatchFlags>();
  CLI::App* cmd = app.add_subcommand("batch", "Generate for every prompt of a file, many at a time (JSONL out)");
  f->model.add(*cmd);
  cmd->add_option("-f,--file", f->file, "Prompts: one per line, or JSONL with per-prompt settings")->required();
  cmd->add_option("-o,--output", f->out, "Write the JSONL results here (default: stdout)");
  cmd->add_flag("--jsonl", f->jsonl, "Read the prompt file as JSONL (default for *.jsonl)");
  cmd->add_option("--parallel", f->parallel, "Sequences generated at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-step-tokens", f->max_step_tokens, "Prefill tokens per engine step (beside the decoding rows)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", f->n_predict, "Tokens to generate per prompt")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  f->sampling.add(*cmd, "Sampling seed (each prompt's sampler starts from it)");
  add_threads_flag(*cmd, f->threads);
  f->kv.add(*cmd);
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past end-of-text tokens");
  cmd->callback([f] { run_batch(*f); });
}

}  // namespace h2o::cli
