// libFuzzer target for Model::load, the public entry point for model files: GGUF, and
// llama2.c checkpoints with their tokenizer.bin. Any bytes must load or throw h2o::Error,
// never crash, hang or allocate wildly; a model that loads must describe itself and hold a
// tokenizer whose vocabulary matches its config.
//
// Input: the first byte selects the format. 'G': the rest is a GGUF file. Anything else:
// llama2.c, the next 4 bytes (little-endian) are the checkpoint's length, then the
// checkpoint, then the tokenizer.bin.
#include <cstring>

#include "common/error.h"
#include "fuzz_file.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::span<const uint8_t> in(data + 1, size - 1);
  std::shared_ptr<const h2o::Model> model;
  try {
    if (data[0] == 'G') {
      const h2o::fuzz::MemFile gguf(in);
      model = h2o::Model::load({gguf.path(), ""});
    } else {
      if (in.size() < 4) return 0;
      uint32_t split = 0;
      std::memcpy(&split, in.data(), 4);
      const std::span<const uint8_t> rest = in.subspan(4);
      split = static_cast<uint32_t>(std::min<size_t>(split, rest.size()));
      const h2o::fuzz::MemFile checkpoint(rest.first(split));
      const h2o::fuzz::MemFile tokenizer(rest.subspan(split));
      model = h2o::Model::load({checkpoint.path(), tokenizer.path()});
    }
  } catch (const h2o::Error&) {
    return 0;
  }
  const h2o::ModelConfig& c = model->config();
  // A vocabulary may be smaller than the embedding (spare rows, as OPT's), never larger.
  if (model->tokenizer().vocab_size() > c.vocab_size) __builtin_trap();
  if (c.n_layers <= 0 || c.dim <= 0 || c.n_heads <= 0 || c.context_length <= 0) __builtin_trap();
  (void)model->describe();
  return 0;
}
