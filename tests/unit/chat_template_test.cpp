// Chat templates for the byte-level BPE families: Llama 3 (3.0 and the dated 3.1/3.2 form)
// and ChatML (Qwen2.5, SmolLM2 with their default system messages), recognised from the
// template text and rendered as model-families.md 3.9 shows; the rendered prompt, encoded
// with special tokens parsed, gives the control tokens and a single BOS.
#include "serve/chat_template.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace h2o::serve {
namespace {

using Ids = std::vector<int32_t>;

// Excerpts of the real templates (the parts the detection and extraction look at).
const char* const kLlama32Template =
    "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif "
    "%}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Cutting Knowledge Date: December 2023\\n\" "
    "}}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{%- for message in messages %}\n    {{- "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' "
    "}}\n{%- endfor %}";
const char* const kLlama30Template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor "
    "%}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const char* const kQwen25Template =
    "{%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + "
    "'<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- for message in messages %}{{- "
    "'<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}";
const char* const kSmolLM2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou "
    "are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

TEST(ChatTemplateTest, DetectsTheFamilies) {
  const auto llama32 = detect_chat_format(kLlama32Template);
  ASSERT_TRUE(llama32);
  EXPECT_EQ(llama32->kind, ChatFormat::Llama3);
  EXPECT_TRUE(llama32->dated_system);
  const auto llama30 = detect_chat_format(kLlama30Template);
  ASSERT_TRUE(llama30);
  EXPECT_EQ(llama30->kind, ChatFormat::Llama3);
  EXPECT_FALSE(llama30->dated_system);
  const auto qwen = detect_chat_format(kQwen25Template);
  ASSERT_TRUE(qwen);
  EXPECT_EQ(qwen->kind, ChatFormat::ChatML);
  EXPECT_EQ(qwen->default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(detect_chat_format(kSmolLM2Template)->default_system,
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  // A bare ChatML template has no default system message.
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}")->default_system, "");
  EXPECT_EQ(chat_format_from_name("llama3"), ChatFormat::Llama3);
  EXPECT_EQ(chat_format_name(ChatFormat::Llama3), "llama3");
}

TEST(ChatTemplateTest, RendersLlama3) {
  const std::vector<ChatMessage> ms = {
      {"system", " Be brief. "}, {"user", "Hi\n"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(render_chat(*detect_chat_format(kLlama30Template), ms),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(*detect_chat_format(kLlama32Template), ms),
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Without a system message the dated system turn is still there, empty after the date.
  EXPECT_EQ(render_chat(*detect_chat_format(kLlama32Template), {{"user", "Hi"}}),
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, RendersChatMLWithTheTemplatesDefaultSystem) {
  const ChatFormat qwen = *detect_chat_format(kQwen25Template);
  EXPECT_EQ(render_chat(qwen, {{"user", " Hi "}}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(qwen, {{"system", "S"}, {"user", "U"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}

// The server's path: render, then encode with special tokens parsed and the vocabulary's BOS.
TEST(ChatTemplateTest, RenderedPromptsEncodeToControlTokens) {
  const auto llama3 = load_tokenizer_for_model(test::shared_path("models/families/llama3-tiny.gguf"));
  const std::string prompt = render_chat(*detect_chat_format(kLlama30Template), {{"user", "Hi"}});
  const Ids ids = llama3->encode(prompt, EncodeOptions{.parse_special = true});
  // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n Hi <|eot_id|> <|start_header_id|> ...
  ASSERT_GE(ids.size(), 8u);
  EXPECT_EQ(ids[0], 128000);
  EXPECT_EQ(ids[1], 128006);
  EXPECT_EQ(ids[3], 128007);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128000), 1);  // one BOS
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128009), 1);  // <|eot_id|>
  EXPECT_EQ(llama3->piece(ids.back()), "\n\n");              // after the assistant header
  EXPECT_EQ(llama3->decode(ids, -1, true), "<|begin_of_text|>" + prompt);

  const auto qwen = load_tokenizer_for_model(test::shared_path("models/families/qwen2-tiny.gguf"));
  const Ids q = qwen->encode(render_chat(ChatFormat::ChatML, {{"user", "Hi"}}), EncodeOptions{.parse_special = true});
  EXPECT_EQ(q.front(), 151644);  // <|im_start|>, no BOS
  EXPECT_EQ(std::count(q.begin(), q.end(), 151645), 1);
  EXPECT_TRUE(qwen->is_end_of_generation(151645));
}

TEST(ChatTemplateTest, ReadsTemplatesFromModels) {
  EXPECT_EQ(read_chat_template(test::shared_path("models/families/llama3-tiny.gguf")), std::nullopt);
  EXPECT_EQ(read_chat_template(test::shared_path("models/families/llama-tiny")), std::nullopt);
  EXPECT_EQ(read_chat_template(test::model_path("stories260K.bin")), std::nullopt);
}

}  // namespace
}  // namespace h2o::serve
