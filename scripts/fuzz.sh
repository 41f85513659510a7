#!/usr/bin/env bash
# Builds the GGUF fuzzer (fuzz/gguf_fuzz.cpp) with clang++ in build-fuzz/ and runs it for a
# bounded time on a seed corpus made from the shared GGUF model files.
#
#   scripts/fuzz.sh [SECONDS]     (default 60)
#
# Exits non-zero if the build fails or the fuzzer finds a crash, leak, timeout or
# out-of-memory; the offending input is saved in build-fuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
models="${H2O_SHARED_DIR:-$root/../shared}/models"

cxx="${CXX:-}"
if [[ -z "$cxx" || "$cxx" != *clang* ]]; then
  cxx="$(command -v clang++ || command -v clang++-14 || true)"
fi
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found (libFuzzer needs clang)" >&2; exit 1; }

# Only the fuzz target is built, so the rest of the tree need not compile with clang.
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DH2O_FUZZ=ON -DH2O_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target gguf_fuzz -j "$(nproc)"

corpus="$(mktemp -d "${TMPDIR:-/tmp}/h2o-gguf-corpus.XXXXXX")"
trap 'rm -rf "$corpus"' EXIT
# Seeds: each small model whole (the valid path to the end), and short prefixes of every
# GGUF file (header, metadata and tensor table cut at different points).
shopt -s nullglob
ggufs=("$models"/*.gguf)
[[ ${#ggufs[@]} -gt 0 ]] || { echo "fuzz.sh: no .gguf files in $models" >&2; exit 1; }
for f in "${ggufs[@]}"; do
  name="$(basename "$f" .gguf)"
  if [[ $(stat -c %s "$f") -le 2097152 ]]; then cp "$f" "$corpus/$name.gguf"; fi
  for n in 64 512 4096 16384 65536; do head -c "$n" "$f" >"$corpus/$name.head$n"; done
done

mkdir -p "$build/artifacts"
echo "fuzz.sh: running gguf_fuzz for ${seconds}s on ${#ggufs[@]} model files' seeds"
"$build/fuzz/gguf_fuzz" "$corpus" \
  -max_total_time="$seconds" -max_len=2097152 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/"
