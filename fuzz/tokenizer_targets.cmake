# libFuzzer targets for the tokenizers (src/tokenizer/) and chat templates
# (src/serve/chat_template.*): included from fuzz/CMakeLists.txt, which sets
# H2O_FUZZ_FLAGS and H2O_SRC_DIR; run by scripts/fuzz_tokenizer.sh.
file(GLOB H2O_TOKENIZER_FUZZ_SOURCES CONFIGURE_DEPENDS ${H2O_SRC_DIR}/tokenizer/*.cpp)
list(APPEND H2O_TOKENIZER_FUZZ_SOURCES
  ${H2O_SRC_DIR}/format/gguf.cpp
  ${H2O_SRC_DIR}/format/llama2c.cpp
  ${H2O_SRC_DIR}/format/mapped_file.cpp
  ${H2O_SRC_DIR}/format/tensor_type.cpp
  ${H2O_SRC_DIR}/format/quantize_k.cpp)

foreach(target tokenizer_gguf_fuzz tokenizer_json_fuzz chat_template_fuzz)
  add_executable(${target} ${target}.cpp ${H2O_TOKENIZER_FUZZ_SOURCES})
  target_include_directories(${target} PRIVATE ${H2O_SRC_DIR})
  target_compile_options(${target} PRIVATE ${H2O_FUZZ_FLAGS} ${H2O_WARNINGS})
  target_link_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${target} PRIVATE fmt::fmt nlohmann_json::nlohmann_json PkgConfig::UTF8PROC)
endforeach()
target_sources(chat_template_fuzz PRIVATE ${H2O_SRC_DIR}/serve/chat_template.cpp)
