#include "serve/chat_template.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/check.h"
#include "format/gguf.h"
#include "tokenizer/vocabulary.h"

namespace h2o::serve {

ChatFormat chat_format_from_name(std::string_view name) {
  if (name == "plain") return ChatFormat::Plain;
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "llama2") return ChatFormat::Llama2;
  if (name == "zephyr") return ChatFormat::Zephyr;
  if (name == "llama3") return ChatFormat::Llama3;
  fail("--chat-template: unknown format '{}' (choose from auto, plain, chatml, llama2, zephyr, llama3)", name);
}

std::string_view chat_format_name(const ChatFormat& f) {
  switch (f.kind) {
    case ChatFormat::ChatML:
      return "chatml";
    case ChatFormat::Llama2:
      return "llama2";
    case ChatFormat::Zephyr:
      return "zephyr";
    case ChatFormat::Llama3:
      return "llama3";
    case ChatFormat::Plain:
      break;
  }
  return "plain";
}

namespace {

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

// The system message a ChatML template writes when the conversation has none: a literal
// '<|im_start|>system\n...<|im_end|>' in the template whose text holds no Jinja code (Qwen2.5:
// "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."). In the template
// source the newline is usually the two characters \n of a Jinja string literal.
std::string chatml_default_system(std::string_view jinja) {
  for (const std::string_view head :
       {std::string_view("<|im_start|>system\\n"), std::string_view("<|im_start|>system\n")}) {
    for (size_t pos = jinja.find(head); pos != std::string_view::npos; pos = jinja.find(head, pos + 1)) {
      const size_t begin = pos + head.size();
      const size_t end = jinja.find("<|im_end|>", begin);
      if (end == std::string_view::npos) break;
      const std::string_view text = jinja.substr(begin, end - begin);
      if (text.empty() || text.find_first_of("'\"{}+") != std::string_view::npos) continue;
      std::string out;
      for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
          out.push_back('\n');
          ++i;
        } else {
          out.push_back(text[i]);
        }
      }
      return out;
    }
  }
  return {};
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n\r\f\v") - b + 1);
}

}  // namespace

std::optional<ChatFormat> detect_chat_format(std::string_view jinja) {
  if (contains(jinja, "<|im_start|>")) {
    ChatFormat f(ChatFormat::ChatML);
    f.default_system = chatml_default_system(jinja);
    return f;
  }
  if (contains(jinja, "<|start_header_id|>") && contains(jinja, "<|end_header_id|>")) {
    ChatFormat f(ChatFormat::Llama3);
    f.dated_system = contains(jinja, "Cutting Knowledge Date");
    return f;
  }
  if (contains(jinja, "[INST]")) return ChatFormat(ChatFormat::Llama2);
  if (contains(jinja, "<|user|>")) return ChatFormat(ChatFormat::Zephyr);
  return std::nullopt;
}

std::optional<std::string> read_chat_template(const std::string& model_path) {
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) return read_hf_chat_template(model_path);
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
    if (!role.empty() && role[0] >= 'a' && role[0] <= 'z') role[0] = static_cast<char>(role[0] - 'a' + 'A');
    out += fmt::format("{}: {}\n", role, m.content);
  }
  return out + "Assistant:";
}

std::string render_chatml(const ChatFormat& f, const std::vector<ChatMessage>& ms) {
  std::string out;
  if (!f.default_system.empty() && (ms.empty() || ms.front().role != "system"))
    out += fmt::format("<|im_start|>system\n{}<|im_end|>\n", f.default_system);
  for (const ChatMessage& m : ms) out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
  return out + "<|im_start|>assistant\n";
}

std::string render_llama3(const ChatFormat& f, const std::vector<ChatMessage>& ms) {
  const auto turn = [](std::string_view role, std::string_view content) {
    return fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", role, content);
  };
  std::string out;
  size_t first = 0;
  if (f.dated_system) {
    // Llama 3.1/3.2: the system turn always comes first; a system message's text joins it.
    std::string_view system;
    if (!ms.empty() && ms.front().role == "system") {
      system = ms.front().content;
      first = 1;
    }
    out += turn("system",
                fmt::format("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{}", trim(system)));
  }
  for (size_t i = first; i < ms.size(); ++i) out += turn(ms[i].role, trim(ms[i].content));
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
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

std::string render_chat(const ChatFormat& f, const std::vector<ChatMessage>& messages) {
  switch (f.kind) {
    case ChatFormat::ChatML:
      return render_chatml(f, messages);
    case ChatFormat::Llama2:
      return render_llama2(messages);
    case ChatFormat::Zephyr:
      return render_zephyr(messages);
    case ChatFormat::Llama3:
      return render_llama3(f, messages);
    case ChatFormat::Plain:
      break;
  }
  return render_plain(messages);
}

}  // namespace h2o::serve
