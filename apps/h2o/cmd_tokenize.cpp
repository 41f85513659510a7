// `h2o tokenize -m MODEL (-p TEXT | -f FILE) [--json] [--special] [--no-bos]`: the token ids
// and pieces of a text, like llama.cpp's llama-tokenize. Only the vocabulary is read (a
// GGUF file's metadata, an HF directory's tokenizer files, or a llama2.c tokenizer.bin), so
// it works on any model file whose tokenizer h2o knows, whatever its architecture.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "common/check.h"
#include "common/text_file.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace h2o::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  std::string file;
  bool json = false;
  bool special = false;
  bool no_bos = false;
  bool stats = false;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void run_tokenize(const TokenizeOptions& o) {
  const bool from_file = !o.file.empty();
  const std::string text = from_file ? read_text_file(o.file) : o.prompt;
  const auto t0 = std::chrono::steady_clock::now();
  const std::unique_ptr<Tokenizer> tok = load_tokenizer_for_model(o.model, o.tokenizer);
  const double load_ms = ms_since(t0);

  EncodeOptions eo;
  eo.parse_special = o.special;
  if (o.no_bos) eo.add_bos = false;
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->encode(text, eo);
  const double encode_ms = ms_since(t1);

  // Pieces are the bytes each token contributes (control tokens show their text); one may
  // end inside a UTF-8 sequence, which only the concatenation completes.
  std::vector<std::string> pieces;
  pieces.reserve(ids.size());
  int32_t prev = -1;
  for (const int32_t id : ids) {
    pieces.push_back(tok->decode_piece(prev, id, /*special=*/true));
    prev = id;
  }
  if (o.json) {
    nlohmann::json j = {{"ids", ids}, {"pieces", pieces}};
    // An incomplete UTF-8 piece cannot be a JSON string: its bad bytes become U+FFFD.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) out += fmt::format("{:6} -> '{}'\n", ids[i], printable_string(pieces[i]));
    std::cout << out;
  }
  if (o.stats) {
    const double mb_per_s = encode_ms > 0 ? static_cast<double>(text.size()) / 1e3 / encode_ms : 0.0;
    std::fprintf(stderr, "tokenize: %s; vocabulary loaded in %.1f ms; %zu bytes -> %zu tokens in %.1f ms (%.2f MB/s)\n",
                 tok->describe().c_str(), load_ms, text.size(), ids.size(), encode_ms, mb_per_s);
  }
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();  // outlives this function: the callback owns it
  CLI::App* cmd =
      app.add_subcommand("tokenize", "Print the token ids and pieces of a text (reads only the model's vocabulary)");
  cmd->add_option("-m,--model", o->model,
                  "Model: GGUF file, Hugging Face directory, or llama2.c checkpoint with --tokenizer")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (for llama2.c checkpoints)");
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize");
  auto* f = cmd->add_option("-f,--file", o->file, "Read the text from a file");
  p->excludes(f);
  f->excludes(p);
  cmd->add_flag("--json", o->json, "Print one JSON object {\"ids\": [...], \"pieces\": [...]}");
  cmd->add_flag("--special", o->special, "Text spelling a control token (e.g. <|im_start|>) becomes that token");
  cmd->add_flag("--no-bos", o->no_bos, "Leave out the BOS token the vocabulary would add");
  cmd->add_flag("--stats", o->stats, "Print load and encode times on stderr");
  cmd->callback([o, p, f] {
    if (p->count() == 0 && f->count() == 0) throw CLI::RequiredError("-p or -f");
    run_tokenize(*o);
  });
}

}  // namespace h2o::cli
