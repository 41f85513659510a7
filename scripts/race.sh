#!/usr/bin/env bash
# The race against llama.cpp (issue 5): same GGUF files, same threads, same prompt and
# generation lengths, in the same run, alternating h2o and llama.cpp.
#
#   scripts/race.sh [-t THREADS] [-p PROMPT] [-n GEN] [-r REPS] [--warmup W]
#                   [--models tinyllama-1.1b:q4_0,tinyllama-1.1b:q8_0] [--json]
#
# Setup done when missing: the random-weight GGUFs are written by `h2o synth` into
# $H2O_RACE_DIR (default /tmp/h2o-race, never inside the repository); node-llama-cpp is
# installed from bench/race/package-lock.json (`npm ci`, the prebuilt linux-x64 CPU build
# of llama.cpp only). The h2o binary is $H2O_BIN (default build/h2o, see scripts/setup.sh).
#
# Each repetition runs `h2o bench` (one process) then bench/race/race.mjs (one process),
# each with W unmeasured warm-up runs first; the table gives the median per engine and
# the ratio h2o / llama.cpp for prefill (P tokens in one batch) and decode (N single-token
# steps, full cache). The raw lines are kept in $H2O_RACE_DIR/race-*.jsonl.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
race_dir=${H2O_RACE_DIR:-/tmp/h2o-race}
h2o=${H2O_BIN:-$repo/build/h2o}
threads=2 n_prompt=512 n_gen=64 reps=3 warmup=1 json=0
models="tinyllama-1.1b:q4_0,tinyllama-1.1b:q8_0"

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -t|--threads) threads=$2; shift 2 ;;
    -p|--n-prompt) n_prompt=$2; shift 2 ;;
    -n|--n-gen) n_gen=$2; shift 2 ;;
    -r|--reps) reps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --json) json=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "race: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in threads n_prompt n_gen reps warmup; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "race: $v must be a number, got '${!v}'" >&2; exit 2; }
done

[[ -x $h2o ]] || { echo "race: $h2o not found; run scripts/setup.sh or set H2O_BIN" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "race: node and npm are needed (apt-get install nodejs npm)" >&2; exit 1; }

# llama.cpp through node-llama-cpp: the pinned version, prebuilt CPU binaries, no source build.
if [[ ! -d $repo/bench/race/node_modules/@node-llama-cpp/linux-x64 ]]; then
  echo "race: installing node-llama-cpp (bench/race/package-lock.json)" >&2
  (cd "$repo/bench/race" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false \
    npm ci --omit=optional --ignore-scripts --no-audit --no-fund >&2)
fi

mkdir -p "$race_dir"
stamp=$(date +%Y%m%d-%H%M%S)
results="$race_dir/race-$stamp.jsonl"
: > "$results"

IFS=',' read -r -a model_list <<< "$models"
for spec in "${model_list[@]}"; do
  shape=${spec%%:*} type=${spec#*:}
  file="$race_dir/$shape-$type.gguf"
  if [[ ! -s $file ]]; then
    echo "race: writing $file" >&2
    "$h2o" synth --shape "$shape" --type "$type" -o "$file.tmp" -t "$threads" >&2
    mv "$file.tmp" "$file"
  fi
  label="$shape $type"
  for ((r = 1; r <= reps; ++r)); do
    echo "race: $label, repetition $r/$reps: h2o" >&2
    "$h2o" bench -m "$file" -p "$n_prompt" -n "$n_gen" -t "$threads" --reps 1 --warmup "$warmup" --json 2>/dev/null |
      node -e '
        const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
        process.stdout.write(JSON.stringify({engine: "h2o", label: process.argv[1], model: j.model, threads: j.threads,
          n_prompt: j.n_prompt, n_gen: j.n_gen, prefill: j.prefill_tokens_per_s.median,
          decode: j.decode_tokens_per_s.median, decode_gb_per_s: j.decode_gb_per_s.median}) + "\n");' "$label" >> "$results"
    echo "race: $label, repetition $r/$reps: llama.cpp" >&2
    node "$repo/bench/race/race.mjs" measure -m "$file" -p "$n_prompt" -n "$n_gen" -t "$threads" --reps 1 --warmup "$warmup" |
      node -e '
        const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
        process.stdout.write(JSON.stringify({...j, label: process.argv[1]}) + "\n");' "$label" >> "$results"
  done
done

echo "race: raw results in $results" >&2
if [[ $json == 1 ]]; then
  node "$repo/bench/race/race.mjs" summarize "$results" --json
else
  node "$repo/bench/race/race.mjs" summarize "$results"
fi
