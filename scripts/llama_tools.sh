#!/usr/bin/env bash
# Builds llama.cpp's own tools for the test fixtures and the race (never part of CI or
# scripts/test.sh): llama-quantize, llama-perplexity, llama-bench and scripts/llama/
# ggml_fixture.c, from the llama.cpp source that node-llama-cpp bundles
# (bench/race/node_modules/node-llama-cpp/llama/gitRelease.bundle, the same release as
# its prebuilt libraries).
#
#   scripts/llama_tools.sh [native|avx2]...     (default: native)
#
#   native: GGML_NATIVE=ON (this CPU's best: AVX-512 VNNI on the project's machine)
#   avx2:   GGML_NATIVE=OFF, AVX2 + FMA + F16C + BMI2, AVX-512 off (for the AVX2 race)
# Output: $H2O_LLAMA_DIR (default /tmp/h2o-llama)/build-<variant>/bin/{llama-quantize,
# llama-perplexity,llama-bench,ggml_fixture}. Takes 10-20 minutes per variant on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${H2O_LLAMA_DIR:-/tmp/h2o-llama}
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(native)

bundle=$repo/bench/race/node_modules/node-llama-cpp/llama/gitRelease.bundle
if [[ ! -f $bundle ]]; then
  echo "llama_tools: installing node-llama-cpp (bench/race/package-lock.json) for its llama.cpp source" >&2
  (cd "$repo/bench/race" && export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false &&
    { npm ci --omit=optional --ignore-scripts --no-audit --no-fund >&2 ||
      npm install --omit=optional --ignore-scripts --no-audit --no-fund --no-save >&2; })
fi
mkdir -p "$dir"
if [[ ! -d $dir/src ]]; then
  git clone -q "$bundle" "$dir/src"
fi
echo "llama_tools: llama.cpp $(cat "$repo/bench/race/node_modules/node-llama-cpp/llama/llama.cpp.info.json" | tr -d ' \n')" >&2

for v in "${variants[@]}"; do
  case $v in
    native) flags=(-DGGML_NATIVE=ON) ;;
    avx2) flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
                 -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF) ;;
    *) echo "llama_tools: unknown variant $v (native, avx2)" >&2; exit 2 ;;
  esac
  b=$dir/build-$v
  cmake -S "$dir/src" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF "${flags[@]}" >&2
  cmake --build "$b" -j"$(nproc)" --target llama-quantize llama-perplexity llama-bench >&2
  gcc -O2 -std=c11 -I "$dir/src/ggml/include" "$repo/scripts/llama/ggml_fixture.c" \
    "$b/ggml/src/libggml.a" "$b/ggml/src/libggml-cpu.a" "$b/ggml/src/libggml-base.a" \
    -lstdc++ -lm -lpthread -fopenmp -o "$b/bin/ggml_fixture"
  echo "llama_tools: $b/bin" >&2
done
