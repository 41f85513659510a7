// The library without the CLI: load a model, create a session, feed the prompt, and
// sample greedily under an H2O-bounded KV cache.
//   simple_generate MODEL.gguf "Once upon a time" 64
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "model/model.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N]\n", argv[0]);
    return 2;
  }
  try {
    auto model = h2o::Model::load({argv[1], ""});
    const h2o::Tokenizer& tok = model->tokenizer();
    const int n = argc > 3 ? std::atoi(argv[3]) : 64;

    h2o::SessionOptions opts;
    opts.kv.policy = "h2o";
    opts.kv.budget = h2o::BudgetSpec::parse("32", "budget");  // 16 heavy hitters + 16 recent
    h2o::Session session(model, opts);
    h2o::Sampler sampler({/*temperature=*/0.0f});

    std::vector<int32_t> prompt = tok.encode(argv[2]);  // BOS first if the vocabulary adds one
    if (prompt.empty()) throw h2o::Error("empty prompt");
    auto logits = session.feed(prompt);
    std::string text = tok.decode(prompt);
    int32_t prev = prompt.back();
    for (int i = 0; i < n && session.n_past() < session.context_length(); ++i) {
      const int32_t next = sampler.sample(logits);
      if (tok.is_end_of_generation(next)) break;
      text += tok.decode_piece(prev, next);
      prev = next;
      logits = session.feed(std::span(&next, 1));
    }
    std::printf("%s\n", text.c_str());
    std::fprintf(stderr, "kv bytes: %zu\n", session.kv_bytes());
  } catch (const h2o::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
