#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/check.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"

namespace h2o {
namespace {

Vocabulary checked(Vocabulary v) {
  check_vocabulary(v);
  return v;
}

std::vector<int32_t> end_of_generation_set(const Vocabulary& v) {
  std::vector<int32_t> ids = v.extra_eog;
  for (const auto& id : {v.eos, v.eot, v.eom}) {
    if (id) ids.push_back(*id);
  }
  if (v.bos_ends_generation && v.bos) ids.push_back(*v.bos);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

bool file_starts_with(const std::string& path, std::string_view magic) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open model file", path);
  char buf[8] = {};
  const size_t n = std::fread(buf, 1, magic.size(), f);
  std::fclose(f);
  return n == magic.size() && std::memcmp(buf, magic.data(), magic.size()) == 0;
}

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocab)
    : vocab_(checked(std::move(vocab))), special_(vocab_), eog_(end_of_generation_set(vocab_)) {}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  const bool bos = opts.add_bos.value_or(vocab_.add_bos);
  const bool eos = opts.add_eos.value_or(vocab_.add_eos);
  if (bos && !vocab_.bos) fail("{}: the vocabulary has no BOS token to add", vocab_.source);
  if (eos && !vocab_.eos) fail("{}: the vocabulary has no EOS token to add", vocab_.source);
  // Both kinds index symbols and pieces with 32-bit integers.
  if (text.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail("text of {} bytes is too long to encode", text.size());
  std::vector<int32_t> out;
  if (bos) out.push_back(*vocab_.bos);
  std::vector<SpecialTokenMatcher::Fragment> fragments;
  special_.split(text, opts.parse_special, fragments);
  bool starts_text = true;
  for (const SpecialTokenMatcher::Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      starts_text = true;
    } else {
      encode_text(text.substr(f.begin, f.end - f.begin), starts_text, out);
      starts_text = false;
    }
  }
  if (eos) out.push_back(*vocab_.eos);
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  EncodeOptions opts;
  if (!add_special) opts.add_bos = opts.add_eos = false;
  return encode(text, opts);
}

std::string Tokenizer::decode(std::span<const int32_t> tokens, int32_t prev, bool special) const {
  std::string out;
  for (const int32_t token : tokens) {
    out += decode_piece(prev, token, special);
    prev = token;
  }
  return out;
}

bool Tokenizer::is_end_of_generation(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is out of range for a vocabulary of {} tokens", id, vocab_size());
}

const std::string& Tokenizer::piece(int32_t id) const {
  check_id(id);
  return pieces_[static_cast<size_t>(id)];
}

TokenKind Tokenizer::kind(int32_t id) const {
  check_id(id);
  return vocab_.kinds[static_cast<size_t>(id)];
}

std::string Tokenizer::describe() const {
  std::string s = fmt::format("{}, {} tokens", kind_name(), vocab_size());
  if (vocab_.add_bos) s += fmt::format(", BOS {} added", *vocab_.bos);
  if (vocab_.eos) s += fmt::format(", EOS {}", *vocab_.eos);
  return s;
}

std::unique_ptr<Tokenizer> make_tokenizer(Vocabulary vocab) {
  if (vocab.model == "llama") return std::make_unique<SpmTokenizer>(std::move(vocab));
  if (vocab.model == "gpt2") return std::make_unique<ByteBpeTokenizer>(std::move(vocab));
  fail("{}: tokenizer model '{}' is not supported (supported: llama = SentencePiece BPE, gpt2 = byte-level BPE)",
       vocab.source, vocab.model);
}

std::unique_ptr<Tokenizer> load_tokenizer_from_gguf(const GgufFile& file) {
  return make_tokenizer(read_vocabulary_gguf(file));
}

std::unique_ptr<Tokenizer> load_tokenizer_from_llama2c(const std::string& path, int32_t vocab_size) {
  return make_tokenizer(read_vocabulary_llama2c(path, vocab_size));
}

std::unique_ptr<Tokenizer> load_tokenizer_from_hf_dir(const std::string& dir) {
  return make_tokenizer(read_vocabulary_hf_dir(dir));
}

std::unique_ptr<Tokenizer> load_tokenizer_for_model(const std::string& model_path,
                                                    const std::string& llama2c_tokenizer) {
  if (model_path.empty()) fail("no model given (-m)");
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) return load_tokenizer_from_hf_dir(model_path);
  if (file_starts_with(model_path, "GGUF")) return load_tokenizer_from_gguf(GgufFile::open(model_path));
  if (llama2c_tokenizer.empty()) {
    fail("{}: not a GGUF file or a Hugging Face directory; a llama2.c checkpoint needs --tokenizer tokenizer.bin",
         model_path);
  }
  const int32_t n = Llama2cCheckpoint::open(model_path).config().vocab_size;
  return load_tokenizer_from_llama2c(llama2c_tokenizer, n);
}

}  // namespace h2o
