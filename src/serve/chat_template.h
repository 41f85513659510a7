// Chat messages -> one prompt string for /v1/chat/completions.
//
// A model may carry a Jinja template (GGUF `tokenizer.chat_template`; an HF directory's
// tokenizer_config.json `chat_template` or chat_template.jinja). This server does not run
// Jinja; it recognises the common formats by their markers, as llama.cpp's
// llm_chat_detect_template does, and renders them natively (model-families.md 3.9):
//
//   chatml   <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
//            (Qwen2/2.5, SmolLM2: the system message the template adds when the
//            conversation has none is read from the template text)
//   llama3   <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ...
//            <|start_header_id|>assistant<|end_header_id|>\n\n   (content trimmed; Llama 3.1+
//            templates always open with a system turn dated "Today Date: 26 Jul 2024", the
//            template's own date when none is given, so that replies are reproducible)
//   llama2   [INST] ... [/INST]
//   zephyr   <|role|>\ncontent</s>\n ... <|assistant|>\n
//
// Anything else (and llama2.c checkpoints, and models without a template) uses "plain":
//
//   System: <content>\n        one line per message, role capitalised
//   User: <content>\n
//   Assistant: <content>\n
//   Assistant:                 the turn the model writes (no trailing space)
//
// No rendering writes the BOS token: encoding adds it when the vocabulary adds one. The
// server encodes the rendered prompt with special tokens parsed (EncodeOptions::
// parse_special), so <|im_start|> and the like become their control tokens; text in
// plain /v1/completions prompts never does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/openai_protocol.h"

namespace h2o::serve {

struct ChatFormat {
  enum Kind : uint8_t { Plain, ChatML, Llama2, Zephyr, Llama3 };
  Kind kind = Plain;
  // ChatML: the system message to put first when the conversation has none ("" = none).
  std::string default_system;
  // Llama 3: the Llama 3.1+ system turn with the knowledge cutoff and date, always present.
  bool dated_system = false;

  ChatFormat(Kind k = Plain) : kind(k) {}  // NOLINT(google-explicit-constructor): ChatFormat::ChatML reads as a value
  bool operator==(const ChatFormat&) const = default;
};

// "plain", "chatml", "llama2", "zephyr", "llama3"; throws h2o::Error for other names.
ChatFormat chat_format_from_name(std::string_view name);
std::string_view chat_format_name(const ChatFormat& f);
// The format a Jinja template text implements, or nullopt if not recognised.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);
// The chat template of a model: a GGUF file's `tokenizer.chat_template`, or an HF
// directory's; nullopt for other files or when there is none.
std::optional<std::string> read_chat_template(const std::string& model_path);

// The prompt for `messages`, ending where the assistant's reply begins.
std::string render_chat(const ChatFormat& f, const std::vector<ChatMessage>& messages);

}  // namespace h2o::serve
