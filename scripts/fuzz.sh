#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp, linking the whole library built with
# clang, coverage instrumentation, ASan and UBSan: scripts/sanitized_build.sh) in
# build-fuzz/ and runs each for a bounded time on its committed seed corpus
# (fuzz/corpus/TARGET/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 25 s, every target)
#
# Exits non-zero if the build fails or any fuzzer finds a crash, UB, leak, timeout or
# out-of-memory; the offending input is saved in build-fuzz/artifacts/TARGET/. Inputs the
# run discovers go to a scratch corpus, not to the repository. Prints one line per target
# (executions, coverage in edges, features, corpus size) and writes them to
# build-fuzz/fuzz-summary.txt (docs/reliability.md records them).
set -euo pipefail

seconds="${1:-25}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"

# The instrumented build that the sanitizer tests share (scripts/sanitized_build.sh).
"$root/scripts/sanitized_build.sh" fuzz_targets

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$root"/fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

# Longest input per target: room for the seeds and what mutation makes of them.
max_len() {
  case "$1" in
    gguf_fuzz | model_load_fuzz) echo 131072 ;;
    llama2c_tokenizer_fuzz | batch_jsonl_fuzz) echo 16384 ;;
    openai_request_fuzz | tokenizer_json_fuzz | safetensors_fuzz) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

scratch="$(mktemp -d "${TMPDIR:-/tmp}/h2o-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
summary="$build/fuzz-summary.txt"
: >"$summary"
status=0
for t in "${targets[@]}"; do
  seeds="$root/fuzz/corpus/$t"
  [[ -d "$seeds" ]] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 1; }
  mkdir -p "$scratch/$t" "$build/artifacts/$t"
  log="$scratch/$t.log"
  echo "fuzz.sh: $t for ${seconds}s ($(ls "$seeds" | wc -l) seeds)"
  if ! "$build/fuzz/$t" "$scratch/$t" "$seeds" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t FAILED (input in $build/artifacts/$t/)" >&2
    status=1
  fi
  # The last status line ("#N DONE cov: E ft: F corp: C/...") and the executions count.
  done_line="$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")"
  printf '%-24s %5ss  execs %9s  cov %6s edges  ft %6s  corpus %5s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" | tee -a "$summary"
done
exit "$status"
