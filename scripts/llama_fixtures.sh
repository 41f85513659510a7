#!/usr/bin/env bash
# Files written by llama.cpp itself, to hold h2o to (never part of CI or scripts/test.sh;
# needs scripts/llama_tools.sh native):
#   1. ../shared/models/books4M-f32.gguf quantized by llama-quantize into every type and
#      mix h2o runs: $H2O_LLAMA_DIR/files/books4M-<MIX>.gguf;
#   2. ggml's decode of every tensor of every file (ggml_fixture hash), next to each file:
#      books4M-<MIX>.ggml-hashes;
#   3. with --update-fixtures, the small fixtures the CI tests read
#      (tests/fixtures/ggml/): the first 32 rows of one tensor of each quantized type of
#      each file, as llama-quantize wrote them (ggml_fixture crop), and their hashes.
# Then `H2O_LLAMA_FILES=$H2O_LLAMA_DIR/files build/tests/h2o_tests --gtest_filter='LlamaFiles.*'`
# checks every tensor of every file against ggml, and that `h2o quantize` writes the same
# bytes as llama-quantize.
#
#   scripts/llama_fixtures.sh [--update-fixtures]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${H2O_LLAMA_DIR:-/tmp/h2o-llama}
bin=$dir/build-native/bin
src=${H2O_SHARED:-$repo/../shared}/models/books4M-f32.gguf
update=0
[[ ${1:-} == --update-fixtures ]] && update=1
[[ -x $bin/llama-quantize && -x $bin/ggml_fixture ]] || { echo "llama_fixtures: run scripts/llama_tools.sh first" >&2; exit 1; }

mixes=(Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL IQ4_XS Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K)
out=$dir/files
mkdir -p "$out"
for m in "${mixes[@]}"; do
  f=$out/books4M-$m.gguf
  [[ -s $f ]] || "$bin/llama-quantize" "$src" "$f" "$m" 2 > "$out/books4M-$m.log" 2>&1
  "$bin/ggml_fixture" hash "$f" > "$out/books4M-$m.ggml-hashes"
  echo "llama_fixtures: $f ($(grep -c . "$out/books4M-$m.ggml-hashes") tensors hashed)" >&2
done

if [[ $update == 1 ]]; then
  fix=$repo/tests/fixtures/ggml
  mkdir -p "$fix"
  : > "$fix/hashes.txt"
  for m in "${mixes[@]}"; do
    # The first tensor of each quantized type in the file (2-D, not F32/F16).
    names=$(awk '$2 != "f32" && $2 != "f16" && !seen[$2]++ {print $1}' "$out/books4M-$m.ggml-hashes")
    # shellcheck disable=SC2086
    "$bin/ggml_fixture" crop "$out/books4M-$m.gguf" "$fix/books4M-$m-rows32.gguf" 32 $names
    "$bin/ggml_fixture" hash "$fix/books4M-$m-rows32.gguf" | sed "s/^/books4M-$m-rows32.gguf /" >> "$fix/hashes.txt"
  done
  (cd "$repo/bench/race" && node -e 'const i=require("./node_modules/node-llama-cpp/llama/llama.cpp.info.json");
    const p=require("./node_modules/node-llama-cpp/package.json");
    console.log(`llama.cpp ${i.llamaCppGithubRepo}@${i.tag} (node-llama-cpp ${p.version})`)') > "$fix/SOURCE"
  echo "llama_fixtures: updated $fix" >&2
fi
