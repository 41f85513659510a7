#!/usr/bin/env bash
# Decode-step latency of `--kv-positions cache` against `absolute` at the same batch
# (issue 15): PAIRS runs of each mode, alternated (odd pairs absolute first, even pairs
# cache first) so that a change in the machine's load hits both; one line per run:
#   pair mode decode_step_ms tokens_per_s time load_average
# then the mean of the per-pair ratios and the ratio of the means.
#
#   scripts/kv_positions_latency.sh MODEL.gguf [PAIRS=8] [extra bench flags...]
# e.g. MODEL = a synthesised head_dim-64 MHA model (h2o synth); the defaults are batch 8,
# h2o with 410 kept slots, q8 storage, prompt 512 (the cache is full from the first decode
# step), 256 decode steps, 2 threads. H2O overrides the binary (default build/h2o).
set -euo pipefail
model="${1:?usage: scripts/kv_positions_latency.sh MODEL.gguf [PAIRS] [flags...]}"
pairs="${2:-8}"
shift $(( $# >= 2 ? 2 : 1 ))
h2o="${H2O:-$(dirname "$0")/../build/h2o}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for i in $(seq 1 "$pairs"); do
  if (( i % 2 )); then order="absolute cache"; else order="cache absolute"; fi
  for mode in $order; do
    r=$("$h2o" bench --throughput -m "$model" -p 512 -n 256 --batch 8 --no-baseline --kv-policy h2o \
          --kv-budget 410 --kv-type q8 --kv-positions "$mode" -t 2 --json "$@" 2>/dev/null |
        python3 -c "import json,sys; d=json.load(sys.stdin)[0]; print(round(d['decode_step_ms'],2), round(d['tokens_per_s'],1))")
    echo "$i $mode $r $(date -u +%H:%M:%S) $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import statistics as st, sys
pairs = {}
for line in open(sys.argv[1]):
    f = line.split()
    pairs.setdefault(f[0], {})[f[1]] = float(f[2])
ratios = [p["cache"] / p["absolute"] - 1 for p in pairs.values()]
a = st.mean(p["absolute"] for p in pairs.values())
c = st.mean(p["cache"] for p in pairs.values())
print(f"absolute {a:.2f} ms, cache {c:.2f} ms; cache vs absolute: mean of pairs {100 * st.mean(ratios):+.1f}%, "
      f"median pair {100 * st.median(ratios):+.1f}%, ratio of means {100 * (c / a - 1):+.1f}%")
PY
