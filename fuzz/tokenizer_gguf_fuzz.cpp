// libFuzzer entry for tokenizer construction from hostile GGUF metadata: the input drives
// a structured tokenizer.ggml.* block (model, pre-tokenizer, tokens with random text and
// types, scores, merges that mostly name real tokens, special ids that may be out of
// range, add_bos) written with GgufWriter and read back through GgufFile::parse, then the
// rest of the input is encoded and decoded. Loading must succeed or throw h2o::Error; a
// byte-level vocabulary must give decode(encode(text)) == text whenever it can represent
// the text (every byte has a token, no NFC, no stripping tokens, no unknown token used).
#include <fmt/format.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

void exercise(const h2o::Tokenizer& tok, const std::string& text) {
  const h2o::Vocabulary& v = tok.vocabulary();
  (void)tok.describe();
  for (const bool special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, h2o::EncodeOptions{.add_bos = false, .parse_special = special});
    } catch (const h2o::Error&) {
      continue;  // a byte with no token and no unknown token
    }
    std::string decoded;
    bool unknown = false;
    for (const int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
      decoded += tok.decode_piece(-1, id, /*special=*/true);
      (void)tok.piece(id);
      (void)tok.is_end_of_generation(id);
      unknown = unknown || (v.unk && id == *v.unk);
    }
    const bool representable = v.model == "gpt2" && !v.nfc && v.lstrip.empty() && v.rstrip.empty() && !unknown;
    if (representable && decoded != text) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  h2o::GgufWriter w;
  const bool spm = in.ConsumeBool();
  w.set_string("tokenizer.ggml.model", spm ? "llama" : in.ConsumeIntegral<uint8_t>() < 250 ? "gpt2" : "bert");
  static const char* const kPre[] = {"gpt-2", "llama-bpe", "qwen2", "smollm", "default", "falcon", "olmo", "", "x"};
  const std::string pre = kPre[in.ConsumeIntegralInRange<size_t>(0, 8)];
  if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);

  std::vector<std::string> tokens;
  if (in.ConsumeIntegral<uint8_t>() < 230) {  // usually a complete byte alphabet first
    for (int b = 0; b < 256; ++b) {
      tokens.push_back(spm ? fmt::format("<0x{:02X}>", b)
                           : h2o::unicode::bytes_to_mapped(std::string(1, static_cast<char>(b))));
    }
  }
  const size_t n_extra = in.ConsumeIntegralInRange<size_t>(0, 200);
  for (size_t i = 0; i < n_extra; ++i) tokens.push_back(in.ConsumeRandomLengthString(12));
  std::vector<int32_t> types;
  std::vector<float> scores;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const bool normal = i < 256 || in.ConsumeIntegral<uint8_t>() < 200;
    types.push_back(normal ? (spm && i < 256 ? 6 : 1) : in.ConsumeIntegralInRange<int32_t>(0, 7));
    scores.push_back(in.ConsumeFloatingPointInRange<float>(-100.0f, 0.0f));
  }
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  if (in.ConsumeIntegral<uint8_t>() < 240) w.set_i32_array("tokenizer.ggml.token_type", types);
  if (spm) w.set_f32_array("tokenizer.ggml.scores", scores);

  // Merges: mostly pairs of existing tokens (so merged texts sometimes exist), some noise.
  std::vector<std::string> merges;
  const size_t n_merges = tokens.empty() ? 0 : in.ConsumeIntegralInRange<size_t>(0, 200);
  for (size_t i = 0; i < n_merges; ++i) {
    if (in.ConsumeIntegral<uint8_t>() < 220) {
      const auto& a = tokens[in.ConsumeIntegralInRange<size_t>(0, tokens.size() - 1)];
      const auto& b = tokens[in.ConsumeIntegralInRange<size_t>(0, tokens.size() - 1)];
      merges.push_back(a + " " + b);
    } else {
      merges.push_back(in.ConsumeRandomLengthString(10));
    }
  }
  if (!spm) w.set_string_array("tokenizer.ggml.merges", merges);
  const auto n = static_cast<uint32_t>(tokens.size());
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.eot_token_id"}) {
    if (in.ConsumeBool()) w.set_u32(key, in.ConsumeIntegralInRange<uint32_t>(0, n + 2));
  }
  if (in.ConsumeBool()) w.set_bool("tokenizer.ggml.add_bos_token", in.ConsumeBool());
  if (in.ConsumeBool()) w.set_bool("tokenizer.ggml.add_space_prefix", in.ConsumeBool());
  const std::string text = in.ConsumeRemainingBytesAsString();

  const std::vector<uint8_t> bytes = w.to_bytes();
  try {
    const h2o::GgufFile file = h2o::GgufFile::parse(bytes, "fuzz.gguf");
    const auto tok = h2o::load_tokenizer_from_gguf(file);
    exercise(*tok, text);
  } catch (const h2o::Error&) {
  }
  return 0;
}
