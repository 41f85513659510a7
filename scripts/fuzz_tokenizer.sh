#!/usr/bin/env bash
# Builds the tokenizer fuzzers (fuzz/tokenizer_targets.cmake) with clang++ in build-fuzz/
# and runs each for a bounded time: tokenizer_gguf_fuzz (tokenizer construction from hostile
# GGUF metadata, encode/decode round trips), tokenizer_json_fuzz (tokenizer.json,
# tokenizer_config.json, generation_config.json), chat_template_fuzz.
#
#   scripts/fuzz_tokenizer.sh [SECONDS_PER_TARGET]     (default 60)
#
# Exits non-zero if a build fails or a fuzzer finds a crash, leak, timeout or
# out-of-memory; the offending input is saved in build-fuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
families="${H2O_SHARED_DIR:-$root/../shared}/models/families"

cxx="${CXX:-}"
if [[ -z "$cxx" || "$cxx" != *clang* ]]; then
  cxx="$(command -v clang++ || command -v clang++-14 || true)"
fi
[[ -n "$cxx" ]] || { echo "fuzz_tokenizer.sh: clang++ not found (libFuzzer needs clang)" >&2; exit 1; }

targets=(tokenizer_gguf_fuzz tokenizer_json_fuzz chat_template_fuzz)
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DH2O_FUZZ=ON -DH2O_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

corpus="$(mktemp -d "${TMPDIR:-/tmp}/h2o-tok-corpus.XXXXXX")"
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus"/{tokenizer_gguf_fuzz,tokenizer_json_fuzz,chat_template_fuzz} "$build/artifacts"
# Seeds: the HF tokenizer files of the fixtures (whole when small, else their first bytes),
# the configs, and text for the structured GGUF fuzzer.
shopt -s nullglob
for f in "$families"/*/tokenizer.json "$families"/*/tokenizer_config.json "$families"/*/generation_config.json; do
  name="$(basename "$(dirname "$f")")-$(basename "$f")"
  head -c 2000000 "$f" >"$corpus/tokenizer_json_fuzz/$name"
done
for f in "$families"/tokenizer-*.jsonl; do
  head -c 4096 "$f" >"$corpus/tokenizer_gguf_fuzz/$(basename "$f")"
  head -c 4096 "$f" >"$corpus/chat_template_fuzz/$(basename "$f")"
done
# A small tokenizer.json (the fixtures' are megabytes: slow to mutate under the sanitizers).
cat >"$corpus/tokenizer_json_fuzz/small.json" <<'JSON'
{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 4, "\u0120ab": 5}, "merges": ["a b", ["\u0120", "ab"]],
 "ignore_merges": true, "unk_token": "a"},
 "normalizer": {"type": "NFC"},
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true},
   {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
 "added_tokens": [{"id": 3, "content": "<s>", "special": true, "lstrip": true, "rstrip": true}],
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
   {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]}}},
 "decoder": {"type": "ByteLevel"}}
JSON
printf '%s' "{% for m in messages %}<|im_start|>system\\nYou are helpful.<|im_end|>{% endfor %}" \
  >"$corpus/chat_template_fuzz/chatml.jinja"

for t in "${targets[@]}"; do
  echo "fuzz_tokenizer.sh: running $t for ${seconds}s"
  "$build/fuzz/$t" "$corpus/$t" -max_total_time="$seconds" -max_len=2097152 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-"
done
