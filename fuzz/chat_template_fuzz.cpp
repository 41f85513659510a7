// libFuzzer entry for chat templates: the input gives a template text (recognised by its
// markers, the ChatML default system message extracted from it), a format name, and a
// conversation of random roles and contents. Detection and rendering must never crash,
// and every rendering ends where the assistant's reply begins.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "serve/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string jinja = in.ConsumeRandomLengthString(4096);
  const std::string name = in.ConsumeRandomLengthString(16);
  static const char* const kRoles[] = {"system", "user", "assistant", "tool", ""};
  std::vector<h2o::serve::ChatMessage> messages;
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t i = 0; i < n; ++i) {
    h2o::serve::ChatMessage m;
    m.role = in.ConsumeBool() ? kRoles[in.ConsumeIntegralInRange<size_t>(0, 4)] : in.ConsumeRandomLengthString(8);
    m.content = in.ConsumeRandomLengthString(256);
    messages.push_back(std::move(m));
  }
  std::vector<h2o::serve::ChatFormat> formats = {h2o::serve::ChatFormat::Plain, h2o::serve::ChatFormat::ChatML,
                                                 h2o::serve::ChatFormat::Llama2, h2o::serve::ChatFormat::Zephyr,
                                                 h2o::serve::ChatFormat::Llama3};
  if (const auto detected = h2o::serve::detect_chat_format(jinja)) formats.push_back(*detected);
  try {
    formats.push_back(h2o::serve::chat_format_from_name(name));
  } catch (const h2o::Error&) {
  }
  for (const auto& f : formats) {
    const std::string prompt = h2o::serve::render_chat(f, messages);
    const auto ends_with = [&](std::string_view tail) { return prompt.ends_with(tail); };
    bool ok = true;
    switch (f.kind) {
      case h2o::serve::ChatFormat::ChatML:
        ok = ends_with("<|im_start|>assistant\n");
        break;
      case h2o::serve::ChatFormat::Llama3:
        ok = ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
      case h2o::serve::ChatFormat::Zephyr:
        ok = ends_with("<|assistant|>\n");
        break;
      case h2o::serve::ChatFormat::Plain:
        ok = ends_with("Assistant:");
        break;
      case h2o::serve::ChatFormat::Llama2:
        break;
    }
    if (!ok) __builtin_trap();
    (void)h2o::serve::chat_format_name(f);
  }
  return 0;
}
