#!/usr/bin/env bash
# Perplexity of books4M quantized into every mix, in h2o and in llama.cpp's own
# llama-perplexity, on the same files (scripts/llama_fixtures.sh's, written by
# llama-quantize) and text; prints each engine's perplexity and its change relative to the
# F32 file. The two engines score differently (h2o: every token of 512-token windows;
# llama-perplexity: the second half of each 512-token chunk), so their F32 figures differ;
# what must agree is the change each mix makes. Not part of CI.
#
#   scripts/llama_perplexity.sh [--chunks N] [--files DIR] [MIX...]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${H2O_LLAMA_DIR:-/tmp/h2o-llama}
h2o=${H2O_BIN:-$repo/build/h2o}
shared=${H2O_SHARED:-$repo/../shared}
text=$shared/data/austen-pride-and-prejudice-flat.txt
files=$dir/files chunks=40 threads=2
mixes=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --chunks) chunks=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    *) mixes+=("$1"); shift ;;
  esac
done
[[ ${#mixes[@]} -gt 0 ]] || mixes=(Q8_0 Q6_K Q5_K_M Q5_1 Q5_0 Q4_K_M Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K_M Q2_K)
perp=$dir/build-native/bin/llama-perplexity
[[ -x $perp ]] || { echo "llama_perplexity: run scripts/llama_tools.sh first" >&2; exit 1; }

# The same tokens in both: llama-perplexity reads chunks * 512 tokens; h2o scores that many.
tokens=$((chunks * 512))
# "full second-half": every scored token, and window positions 256..511 only.
ppl_h2o() { "$h2o" perplexity -m "$1" -f "$text" --ctx 512 --max-tokens "$tokens" -t "$threads" --json --per-token 2>/dev/null |
            node -e '
              const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
              let s = 0, n = 0;
              for (let w = 0; (w + 1) * 511 <= j.nll.length; ++w)
                for (let k = 255; k < 511; ++k) { s += j.nll[w * 511 + k]; ++n; }
              console.log(j.ppl.toFixed(4) + " " + Math.exp(s / n).toFixed(4));'; }
ppl_llama() {
  local p=""
  for _ in 1 2 3; do  # a run killed on a busy machine prints no estimate: try again
    p=$("$perp" -m "$1" -f "$text" -c 512 --chunks "$chunks" -t "$threads" 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    [[ -n $p ]] && break
  done
  echo "$p"
}

f32=$shared/models/books4M-f32.gguf
read -r h_f32 hs_f32 <<< "$(ppl_h2o "$f32")"
l_f32=$(ppl_llama "$f32")
pct() { echo "($1 / $2 - 1) * 100" | bc -l; }
printf '%-8s %10s %8s  %12s %8s  %10s %8s\n' mix "h2o ppl" change "h2o 2nd-half" change "llama ppl" change
printf '%-8s %10s %8s  %12s %8s  %10s %8s\n' F32 "$h_f32" "" "$hs_f32" "" "$l_f32" ""
for m in "${mixes[@]}"; do
  f=$files/books4M-$m.gguf
  read -r h hs <<< "$(ppl_h2o "$f")"
  l=$(ppl_llama "$f")
  printf '%-8s %10s %7.2f%%  %12s %7.2f%%  %10s %7.2f%%\n' "$m" "$h" "$(pct "$h" "$h_f32")" "$hs" "$(pct "$hs" "$hs_f32")" \
    "$l" "$(pct "$l" "$l_f32")"
done
