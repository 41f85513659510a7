// The tokenizer endpoints of `h2o serve`, in vLLM's format, which lm-evaluation-harness's
// `remote` tokenizer backend calls (so a harness needs no Hugging Face tokenizer to score
// a GGUF model through this server):
//   POST /tokenize   {"prompt": text, "add_special_tokens"?: bool = true}
//                    -> {"tokens": [id], "count": n, "max_model_len": context length}
//   POST /detokenize {"tokens": [id]} -> {"prompt": text}
//   GET  /tokenizer_info -> {"tokenizer_class", "bos_token", "eos_token", "pad_token",
//                            "model_max_length", "chat_template"? }
// Text is tokenized as a Hugging Face tokenizer does it: text spelling a special token
// ("<s>", "<|endoftext|>") becomes that token, and add_special_tokens adds the BOS the
// vocabulary adds. Detokenized text leaves control tokens out (as completions' text does).
// Pure functions of the tokenizer and the body; each throws ApiError (400) naming the problem.
#pragma once

#include <string>
#include <string_view>

#include "serve/openai_protocol.h"
#include "tokenizer/tokenizer.h"

namespace h2o::serve {

std::string tokenize_response(const Tokenizer& tok, std::string_view body, int context_length,
                              const ProtocolLimits& limits);
std::string detokenize_response(const Tokenizer& tok, std::string_view body, const ProtocolLimits& limits);
std::string tokenizer_info_response(const Tokenizer& tok, int context_length);

}  // namespace h2o::serve
