// libFuzzer entry for Hugging Face tokenizer files: the input is parsed as tokenizer.json
// (and, against a fixed small vocabulary, as tokenizer_config.json and
// generation_config.json). Every input must load or throw h2o::Error -- never crash or
// allocate wildly; a loaded tokenizer encodes and decodes a few texts and the input itself.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace {

// A valid byte-level vocabulary: the 256 byte characters and one merge.
h2o::Vocabulary small_vocabulary() {
  std::string json = R"({"model": {"type": "BPE", "merges": ["a b"], "vocab": {"ab": 256)";
  int next = 0x100;  // GPT-2's byte map: printable bytes as themselves, the rest from U+0100
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    json += fmt::format(R"(, "\u{:04x}": {})", printable ? b : next++, b);
  }
  json += R"(}}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
             "added_tokens": [{"id": 257, "content": "<|endoftext|>", "special": true}]})";
  return h2o::parse_tokenizer_json(json, "small.json");
}

void exercise(const h2o::Tokenizer& tok, std::string_view input) {
  for (const std::string_view text : {std::string_view(" Hello world 123 \xC3\xA7"
                                                       "a\n\n<|endoftext|>"),
                                      input.substr(0, 512)}) {
    for (const bool special : {false, true}) {
      try {
        const auto ids = tok.encode(text, h2o::EncodeOptions{.parse_special = special});
        (void)tok.decode(ids, -1, special);
      } catch (const h2o::Error&) {
      }
    }
  }
  (void)tok.describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = h2o::make_tokenizer(h2o::parse_tokenizer_json(input, "tokenizer.json"));
    exercise(*tok, input);
  } catch (const h2o::Error&) {
  }
  static const h2o::Vocabulary base = small_vocabulary();
  for (const bool generation : {false, true}) {
    h2o::Vocabulary v = base;
    try {
      if (generation) {
        h2o::apply_generation_config(v, input, "generation_config.json");
      } else {
        h2o::apply_tokenizer_config(v, input, "tokenizer_config.json");
      }
      exercise(*h2o::make_tokenizer(std::move(v)), input);
    } catch (const h2o::Error&) {
    }
  }
  return 0;
}
