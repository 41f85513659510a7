#!/usr/bin/env bash
# Perplexity under every KV policy at 10%, 20% and 50% budgets of the window, with
# per-token prefill (--prefill-chunk 1, the paper's setting; h2o/random recent = half the
# budget), next to the full cache. Prints a Markdown table per model.
#   scripts/kv_quality_table.sh [WINDOWS_STORIES] [WINDOWS_BOOKS]
# Windows are 512-token windows (the models' trained context); 0 = the whole text, "-" =
# skip that model. Defaults: all of TinyStories for stories260K, 100 windows of the book
# for books4M (the flat copy: books4M was trained on paragraphs with whitespace collapsed
# and no newlines; the line-wrapped book inflates its perplexity ~2.4x).
set -euo pipefail
cd "$(dirname "$0")/.."
H2O=${H2O:-build/h2o}
M=../shared/models
D=../shared/data
WS=${1:-0}
WB=${2:-100}
POLICIES=(window sink h2o tova random)
BUDGETS=(10% 20% 50%)

table() {  # model-args text windows label
  local model=$1 text=$2 windows=$3 label=$4
  local max=$((windows * 511))
  local common=(perplexity -m "$model" -f "$text" --max-tokens "$max" --prefill-chunk 1 -t 1 --json)
  local what="first $max tokens ($windows windows of 512)"
  [ "$windows" = 0 ] && what="all tokens (windows of 512)"
  echo "### $label"
  echo
  echo "\`$(basename "$model")\` on \`$(basename "$text")\`: $what, --prefill-chunk 1."
  echo
  local full
  full=$("$H2O" "${common[@]}")
  local fppl fkv
  fppl=$(jq -r '.ppl' <<<"$full")
  fkv=$(jq -r '.kv_bytes_peak' <<<"$full")
  printf '| policy | %s |\n|---|---|---|---|\n' "$(IFS='|'; echo "${BUDGETS[*]}" | sed 's/|/ | /g')"
  printf '| full (100%%) | %.4f | %.4f | %.4f |\n' "$fppl" "$fppl" "$fppl"
  for p in "${POLICIES[@]}"; do
    local row="| $p |"
    for b in "${BUDGETS[@]}"; do
      local j
      j=$("$H2O" "${common[@]}" --kv-policy "$p" --kv-budget "$b")
      row+=$(printf ' %.4f |' "$(jq -r '.ppl' <<<"$j")")
    done
    echo "$row"
  done
  echo
  echo "Peak KV bytes: full $fkv; at 20% the bounded policies allocate budget + 1 slots per (layer, KV head)."
  echo
}

[ "$WS" = - ] || table "$M/stories260K-f32.gguf" "$D/tinystories-valid.txt" "$WS" "stories260K (TinyStories validation)"
[ "$WB" = - ] || table "$M/books4M-f32.gguf" "$D/austen-pride-and-prejudice-flat.txt" "$WB" \
  "books4M (Pride and Prejudice, flat text, held out)"
