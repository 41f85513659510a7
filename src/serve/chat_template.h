// Chat messages -> one prompt string for /v1/chat/completions.
//
// A GGUF model may carry a Jinja template in `tokenizer.chat_template`. This server does
// not run Jinja; it recognises the common formats by their markers and renders them
// natively. Anything else (and llama2.c checkpoints, and GGUF files without a template)
// uses the documented default, "plain":
//
//   System: <content>\n        one line per message, role capitalised
//   User: <content>\n
//   Assistant: <content>\n
//   Assistant:                 the turn the model writes (no trailing space)
//
// The prompt is encoded with BOS first like every other prompt. The tokenizer does not
// parse special tokens out of text, so markers such as <|im_start|> are encoded as text
// unless the vocabulary has them as normal/user-defined pieces.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/openai_protocol.h"

namespace h2o::serve {

enum class ChatFormat { Plain, ChatML, Llama2, Zephyr };

// "plain", "chatml", "llama2", "zephyr"; throws h2o::Error for other names.
ChatFormat chat_format_from_name(std::string_view name);
std::string_view chat_format_name(ChatFormat f);
// The format a Jinja template text implements, or nullopt if not recognised.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);
// `tokenizer.chat_template` of a GGUF file; nullopt for other files or when it is absent.
std::optional<std::string> read_chat_template(const std::string& model_path);

// The prompt for `messages`, ending where the assistant's reply begins.
std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages);

}  // namespace h2o::serve
