// libFuzzer entry for reading a model directory's config.json: parse the bytes as JSON (as
// read_json_file does; also with duplicate keys rejected, as the safetensors header is),
// then read the fields an architecture reader asks for, with their defaults and ranges.
// Every outcome must be a value or a one-line h2o::Error naming the file -- never a crash,
// a hang or a multi-line message.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/error.h"
#include "common/json_file.h"

namespace {

constexpr std::string_view kName = "config.json";

void check_message(const h2o::Error& e) {
  const std::string_view m = e.what();
  if (!m.starts_with(kName) || m.find('\n') != std::string_view::npos) __builtin_trap();
}

template <typename F>
void attempt(F&& read) {
  try {
    read();
  } catch (const h2o::Error& e) {
    check_message(e);
  }
}

void read_config(const nlohmann::json& j) {
  const h2o::JsonFields cfg(j, std::string(kName));
  constexpr int64_t kBig = int64_t{1} << 30;
  for (const char* key :
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "vocab_size", "max_position_embeddings", "ffn_dim", "word_embed_proj_dim", "sliding_window"}) {
    attempt([&] { (void)cfg.integer(key, std::nullopt, 1, kBig); });
    attempt([&] { (void)cfg.integer(key, 7, 0, 100); });
  }
  for (const char* key : {"rms_norm_eps", "layer_norm_eps", "rope_theta", "rotary_pct", "rotary_emb_base"}) {
    attempt([&] { (void)cfg.number(key, 1.0, 0.0, 1e12); });
  }
  for (const char* key : {"tie_word_embeddings", "attention_bias", "use_parallel_residual", "do_layer_norm_before"}) {
    attempt([&] { (void)cfg.boolean(key, false); });
  }
  for (const char* key : {"model_type", "hidden_act", "activation_function", "torch_dtype"}) {
    attempt([&] { (void)cfg.string(key, std::nullopt); });
  }
  attempt([&] { (void)cfg.integer_list("eos_token_id", 0, kBig); });
  attempt([&] { (void)cfg.integer_list("bos_token_id", 0, kBig); });
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    attempt([&] {
      const auto rope = cfg.object(key);
      if (!rope) return;
      attempt([&] { (void)rope->string("rope_type", std::string("default")); });
      attempt([&] { (void)rope->string("type", std::nullopt); });
      attempt([&] { (void)rope->number("factor", 1.0, 1.0, 1024.0); });
      attempt([&] { (void)rope->integer("original_max_position_embeddings", std::nullopt, 1, kBig); });
      attempt([&] { (void)rope->object("full_attention"); });
    });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  attempt([&] { (void)h2o::parse_json_text(text, kName, h2o::JsonDuplicateKeys::kReject); });
  attempt([&] { read_config(h2o::parse_json_text(text, kName)); });
  return 0;
}
