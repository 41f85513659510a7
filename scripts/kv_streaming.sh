#!/usr/bin/env bash
# Streaming past the trained context (issue 15): books4M (trained on flat text, 512-token
# context) scores 8192 tokens of the flat book in one stream, one token per step, under a
# 128-slot cache, with positions re-indexed in the cache (`cache`) or absolute; against
# the same policy (and `full`) over 512-token windows. Prints Markdown tables: perplexity
# per 512-token segment of the stream, and per segment the stream against the windowed run
# on the same tokens (from the per-token NLLs); draws the figure (the last run draws every
# run's JSON with --plot-with).
#   scripts/kv_streaming.sh [OUT_DIR]   (default docs/figures/streaming-books4M)
set -euo pipefail
cd "$(dirname "$0")/.."
H2O=${H2O:-build/h2o}
OUT=${1:-docs/figures/streaming-books4M}
M=../shared/models/books4M-f32.gguf
T=../shared/data/austen-pride-and-prejudice-flat.txt
mkdir -p "$OUT"
common=(perplexity -m "$M" -f "$T" --max-tokens 8192 --prefill-chunk 1 --segment 512 -t 1 --json --per-token)
"$H2O" "${common[@]}" --ctx 512 > "$OUT/full-ctx512.json"
runs=("$OUT/full-ctx512.json")
for policy in sink h2o; do
  "$H2O" "${common[@]}" --kv-policy "$policy" --kv-budget 128 --ctx 512 > "$OUT/$policy-ctx512.json"
  runs+=("$OUT/$policy-ctx512.json")
  for positions in cache absolute; do
    extra=()
    if [ "$policy/$positions" = h2o/absolute ]; then extra=(--plot "$OUT/streaming-books4M" --plot-with "${runs[@]}"); fi
    "$H2O" "${common[@]}" --kv-policy "$policy" --kv-budget 128 --ctx 8193 --kv-positions "$positions" "${extra[@]}" \
      > "$OUT/$policy-$positions.json"
    runs+=("$OUT/$policy-$positions.json")
  done
done
echo "| run | ppl | perplexity per 512-token segment |"
echo "|---|---:|---|"
for f in "${runs[@]}"; do
  jq -r '"| \(.kv_description), ctx \(.ctx) | \(.ppl * 100 | round / 100) | \([.segments[].ppl * 100 | round / 100 | tostring] | join(" ")) |"' "$f"
done
# Per segment, on the same 512 tokens: the stream's perplexity over the windowed run's.
seg_ppl='[.nll as $n | range(0; 16) | [$n[. * 512:(. + 1) * 512][]] | add / length | exp]'
echo
echo "| policy | positions | stream / 512-token windows, per segment (same tokens) | worst |"
echo "|---|---|---|---:|"
for policy in sink h2o; do
  for positions in cache absolute; do
    jq -rn --slurpfile s "$OUT/$policy-$positions.json" --slurpfile w "$OUT/$policy-ctx512.json" \
      "(\$s[0] | $seg_ppl) as \$a | (\$w[0] | $seg_ppl) as \$b | [range(0; 16) | \$a[.] / \$b[.]] as \$r |
       \"| $policy | $positions | \([\$r[] * 1000 | round / 1000 | tostring] | join(\" \")) | \(\$r | map(. - 1 | fabs) | max * 1000 | round / 10)% |\""
  done
done
