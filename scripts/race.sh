#!/usr/bin/env bash
# The race against llama.cpp (issues 5, 13): same GGUF files, same threads, same prompt and
# generation lengths, in the same run, alternating h2o and llama.cpp.
#
#   scripts/race.sh [-t THREADS] [-p PROMPT] [-n GEN] [-r REPS] [--warmup W]
#                   [--models tinyllama-1.1b:q4_k_m,tinyllama-1.1b:q5_k_m,...]
#                   [--llama-bench BIN] [--json]
#
# Models are SHAPE:TYPE. The shape is an `h2o synth` shape (tinyllama-1.1b, llama2-7b, ...;
# a Llama-3.2-1B shape joins when the llama3 architecture lands: pass it here, nothing else
# changes). Every file of a shape is quantized from one F16 file that `h2o synth` writes:
# by llama.cpp's own llama-quantize ($H2O_LLAMA_QUANTIZE, default
# $H2O_LLAMA_DIR/build-native/bin/llama-quantize from scripts/llama_tools.sh), or, if that is
# missing, by `h2o quantize` (said on stderr; it writes the same bytes). TYPE is a type or
# a llama-quantize mix: q4_0, q8_0, q4_k_m, q5_k_m, ...
#
# llama.cpp runs through node-llama-cpp (bench/race/: prebuilt CPU libraries; ggml picks
# the best variant for the CPU) or, with --llama-bench BIN, through a llama-bench binary
# (e.g. the AVX2-only build of scripts/llama_tools.sh avx2; run h2o with H2O_SIMD=avx2 for
# the same comparison): prefill = `-p P -n 0`, decode = `-p 0 -n N -d P` (N steps after a
# P-token context).
#
# Files go to $H2O_RACE_DIR (default /tmp/h2o-race, never inside the repository). Each
# repetition runs `h2o bench --bandwidth` (one process, with W unmeasured warm-up runs and a
# triad bandwidth probe) then llama.cpp (one process); the table gives the median per
# engine, the ratio h2o / llama.cpp for prefill (P tokens in one batch) and decode (N
# single-token steps, full cache), and decode's share of the triad measured in the same
# repetition (weight bytes of the file per token). The CPU's flags and H2O_SIMD are
# recorded; raw lines are kept in $H2O_RACE_DIR/race-*.jsonl.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
race_dir=${H2O_RACE_DIR:-/tmp/h2o-race}
h2o=${H2O_BIN:-$repo/build/h2o}
llama_dir=${H2O_LLAMA_DIR:-/tmp/h2o-llama}
quantizer=${H2O_LLAMA_QUANTIZE:-$llama_dir/build-native/bin/llama-quantize}
threads=2 n_prompt=512 n_gen=64 reps=3 warmup=1 json=0 llama_bench=""
models="tinyllama-1.1b:q4_k_m,tinyllama-1.1b:q5_k_m,tinyllama-1.1b:q4_0,tinyllama-1.1b:q8_0"

usage() { sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -t|--threads) threads=$2; shift 2 ;;
    -p|--n-prompt) n_prompt=$2; shift 2 ;;
    -n|--n-gen) n_gen=$2; shift 2 ;;
    -r|--reps) reps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --llama-bench) llama_bench=$2; shift 2 ;;
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
[[ -z $llama_bench || -x $llama_bench ]] || { echo "race: $llama_bench is not executable" >&2; exit 1; }

# llama.cpp through node-llama-cpp: the pinned version, prebuilt CPU binaries, no source
# build (npm ci; newer npm versions refuse this lock file's optional platform entries, so
# fall back to npm install of the same pinned versions without touching the lock file).
if [[ ! -d $repo/bench/race/node_modules/@node-llama-cpp/linux-x64 ]]; then
  echo "race: installing node-llama-cpp (bench/race/package-lock.json)" >&2
  (cd "$repo/bench/race" && export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false &&
    { npm ci --omit=optional --ignore-scripts --no-audit --no-fund >&2 ||
      npm install --omit=optional --ignore-scripts --no-audit --no-fund --no-save >&2; })
fi

mkdir -p "$race_dir"
stamp=$(date +%Y%m%d-%H%M%S)
results="$race_dir/race-$stamp.jsonl"
: > "$results"

# The machine, for the record: CPU model and SIMD flags, the target h2o uses.
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|f16c|avx512f|avx512bw|avx512_vnni|avx_vnni|avx512vl)$' | tr '\n' ' ')
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
node -e 'process.stdout.write(JSON.stringify({engine: "machine", cpu: process.argv[1], flags: process.argv[2].trim(),
  h2o_simd: process.argv[3] || "best", llama: process.argv[4] || "node-llama-cpp", date: new Date().toISOString()}) + "\n")' \
  "$cpu" "$flags" "${H2O_SIMD:-}" "$llama_bench" >> "$results"

# SHAPE-TYPE.gguf: the F16 file of the shape (h2o synth), quantized by llama-quantize.
make_file() {
  local shape=$1 type=$2 file=$3 f16="$race_dir/$1-f16.gguf"
  if [[ ! -s $f16 ]]; then
    echo "race: writing $f16" >&2
    "$h2o" synth --shape "$shape" --type f16 -o "$f16.tmp" -t "$threads" >&2
    mv "$f16.tmp" "$f16"
  fi
  [[ $type == f16 ]] && return
  if [[ -x $quantizer ]]; then
    echo "race: $quantizer $f16 -> $file ($type)" >&2
    "$quantizer" "$f16" "$file.tmp" "${type^^}" "$threads" > "$file.log" 2>&1
  else
    echo "race: no llama-quantize at $quantizer (scripts/llama_tools.sh); using h2o quantize" >&2
    "$h2o" quantize "$f16" "$file.tmp" "$type" -t "$threads" >&2
  fi
  mv "$file.tmp" "$file"
}

llama_measure() {  # one repetition of llama.cpp on $1, one JSON line
  local file=$1 label=$2
  if [[ -z $llama_bench ]]; then
    node "$repo/bench/race/race.mjs" measure -m "$file" -p "$n_prompt" -n "$n_gen" -t "$threads" --reps 1 --warmup "$warmup"
    return
  fi
  local pp tg
  pp=$("$llama_bench" -m "$file" -t "$threads" -r 1 -p "$n_prompt" -n 0 -o jsonl 2>/dev/null | tail -1)
  tg=$("$llama_bench" -m "$file" -t "$threads" -r 1 -p 0 -n "$n_gen" -d "$n_prompt" -o jsonl 2>/dev/null | tail -1)
  node -e '
    const pp = JSON.parse(process.argv[1]), tg = JSON.parse(process.argv[2]);
    process.stdout.write(JSON.stringify({engine: "llama.cpp", model: pp.model_filename, threads: pp.n_threads,
      n_prompt: pp.n_prompt, n_gen: tg.n_gen, prefill: pp.avg_ts, decode: tg.avg_ts,
      cpu_variant: pp.cpu_info + " / " + pp.backends, llama_cpp_release: "llama-bench " + pp.build_commit}) + "\n");' "$pp" "$tg"
}

IFS=',' read -r -a model_list <<< "$models"
for spec in "${model_list[@]}"; do
  shape=${spec%%:*} type=${spec#*:}
  file="$race_dir/$shape-$type.gguf"
  [[ $type == f16 ]] && file="$race_dir/$shape-f16.gguf"
  [[ -s $file ]] || make_file "$shape" "$type" "$file"
  label="$shape $type"
  for ((r = 1; r <= reps; ++r)); do
    echo "race: $label, repetition $r/$reps: h2o" >&2
    "$h2o" bench -m "$file" -p "$n_prompt" -n "$n_gen" -t "$threads" --reps 1 --warmup "$warmup" --bandwidth --json 2>/dev/null |
      node -e '
        const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
        process.stdout.write(JSON.stringify({engine: "h2o", label: process.argv[1], model: j.model, threads: j.threads,
          n_prompt: j.n_prompt, n_gen: j.n_gen, prefill: j.prefill_tokens_per_s.median,
          decode: j.decode_tokens_per_s.median, decode_gb_per_s: j.decode_gb_per_s.median,
          triad_gb_per_s: j.bandwidth ? j.bandwidth.triad_gb_per_s : null}) + "\n");' "$label" >> "$results"
    echo "race: $label, repetition $r/$reps: llama.cpp" >&2
    llama_measure "$file" "$label" |
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
