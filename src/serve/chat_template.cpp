#include "serve/chat_template.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

#include "common/check.h"
#include "format/gguf.h"

namespace h2o::serve {

ChatFormat chat_format_from_name(std::string_view name) {
  if (name == "plain") return ChatFormat::Plain;
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "llama2") return ChatFormat::Llama2;
  if (name == "zephyr") return ChatFormat::Zephyr;
  fail("--chat-template: unknown format '{}' (choose from auto, plain, chatml, llama2, zephyr)", name);
}

std::string_view chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML:
      return "chatml";
    case ChatFormat::Llama2:
      return "llama2";
    case ChatFormat::Zephyr:
      return "zephyr";
    case ChatFormat::Plain:
      break;
  }
  return "plain";
}

std::optional<ChatFormat> detect_chat_format(std::string_view jinja) {
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatFormat::ChatML;
  if (jinja.find("[INST]") != std::string_view::npos) return ChatFormat::Llama2;
  if (jinja.find("<|user|>") != std::string_view::npos) return ChatFormat::Zephyr;
  return std::nullopt;
}

std::optional<std::string> read_chat_template(const std::string& model_path) {
  // Only GGUF files carry metadata; check the magic before parsing.
  std::FILE* f = std::fopen(model_path.c_str(), "rb");
  if (!f) return std::nullopt;
  char magic[4] = {};
  const size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  if (n != 4 || std::memcmp(magic, "GGUF", 4) != 0) return std::nullopt;
  return GgufFile::open(model_path).get_string("tokenizer.chat_template");
}

namespace {

std::string render_plain(const std::vector<ChatMessage>& ms) {
  std::string out;
  for (const ChatMessage& m : ms) {
    std::string role = m.role;
    role[0] = static_cast<char>(role[0] - 'a' + 'A');
    out += fmt::format("{}: {}\n", role, m.content);
  }
  return out + "Assistant:";
}

std::string render_chatml(const std::vector<ChatMessage>& ms) {
  std::string out;
  for (const ChatMessage& m : ms) out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
  return out + "<|im_start|>assistant\n";
}

// Llama 2 chat: the system prompt folds into the first user turn; BOS comes from encode().
std::string render_llama2(const std::vector<ChatMessage>& ms) {
  std::string out, system;
  bool first_user = true;
  for (const ChatMessage& m : ms) {
    if (m.role == "system") {
      system += m.content;
    } else if (m.role == "user") {
      std::string content = m.content;
      if (first_user && !system.empty()) content = fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n{}", system, content);
      first_user = false;
      out += fmt::format("[INST] {} [/INST]", content);
    } else {
      out += fmt::format(" {} ", m.content);
    }
  }
  return out;
}

std::string render_zephyr(const std::vector<ChatMessage>& ms) {
  std::string out;
  for (const ChatMessage& m : ms) out += fmt::format("<|{}|>\n{}</s>\n", m.role, m.content);
  return out + "<|assistant|>\n";
}

}  // namespace

std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages) {
  switch (f) {
    case ChatFormat::ChatML:
      return render_chatml(messages);
    case ChatFormat::Llama2:
      return render_llama2(messages);
    case ChatFormat::Zephyr:
      return render_zephyr(messages);
    case ChatFormat::Plain:
      break;
  }
  return render_plain(messages);
}

}  // namespace h2o::serve
