#!/usr/bin/env bash
# Batch-1 decode A/B of two ling binaries on one GPU: synthesises the Ring-mini-linear-2.0-dims model (bf16, 33 GB)
# and the Ling-2.5 dims cut to 8 layers and 16 experts (21 GB), then runs `ling bench MODEL --backend cuda` with
# the two binaries alternating (A, B, A, B: these machines drift, so each pair shares the minutes it ran in),
# then B once per extra variant (an environment setting such as LING_CUDA_GQA_WIDE=0, or several joined by commas:
# LING_CUDA_FOLD_CLUSTER=0,LING_CUDA_ROUTER_BF16=0). One line per run:
# the engine.decode row (ms per step median, min..max, MB, GFLOP, GB/s, TFLOP/s, % of the roofline) and the copy
# ceiling measured in that run; the full outputs in OUT_DIR.
# Usage: scripts/decode-ab.sh BIN_A BIN_B [OUT_DIR (default /tmp/decode-ab)] [VAR=VALUE[,VAR=VALUE...] ...]
#   e.g. scripts/decode-ab.sh old/ling build/tools/ling/ling /tmp/ab LING_CUDA_GEMV_RAW=0 LING_CUDA_EARLY_SHARED=0
# Models go to LING_AB_DIR (default /tmp; 54 GB while both exist, the first is removed before the second is made);
# batch sizes LING_AB_BATCH (default 1), steps LING_AB_STEPS (default 64), context: ling bench's default (1,024).
# LING_AB_KTRACE=path/to/libling_ktrace.so (tools/ktrace): one more run of each binary per model under the kernel
# timeline, its per-kernel summary (scripts/ktrace-summary.py --nodes) in OUT_DIR/NAME-{A,B}-ktrace.txt.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/decode-ab.sh BIN_A BIN_B [OUT_DIR] [VAR=VALUE ...]" >&2
  exit 2
fi
a=$1 b=$2
out=${3:-/tmp/decode-ab}
shift $(( $# >= 3 ? 3 : 2 ))
for x in "$a" "$b"; do [ -x "$x" ] || { echo "decode-ab: $x is not an executable" >&2; exit 2; }; done
for v in "$@"; do
  IFS=, read -ra parts <<< "$v"
  for x in "${parts[@]}"; do
    [[ $x == [A-Za-z_]*=* ]] || { echo "decode-ab: variant '$v' is not VAR=VALUE[,VAR=VALUE...]" >&2; exit 2; }
  done
done
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LING_AB_DIR:-/tmp}
batch=${LING_AB_BATCH:-1}
steps=${LING_AB_STEPS:-64}
mkdir -p "$out"
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$out/summary.txt"; }
# bench LABEL BIN MODEL [VAR=VALUE ...]
bench() {
  local label=$1 bin=$2 model=$3 var=()
  [ $# -ge 4 ] && var=("${@:4}")
  env "${var[@]}" timeout 300 "$bin" --no-db bench "$model" --backend cuda --prefill 64 --batch "$batch" \
    --steps "$steps" > "$out/$label.txt" 2>&1
  local rc=$?
  local copy
  copy=$(awk '/^copy.d2d/ {print $(NF-2)}' "$out/$label.txt")
  say "$label rc=$rc copy ${copy:-?} GB/s | $(grep -hE '^engine.decode' "$out/$label.txt" | awk '{$1=$1};1' | tr '\n' '|')"
}
models=("ring-mini:$root/configs/ring-mini-linear-2.0/config.json:"
        "ling25-cut:$root/configs/ling-2.5-1t/config.json:--layers 8 --experts 16")
for m in "${models[@]}"; do
  IFS=: read -r name config extra <<< "$m"
  model=$dir/ab-$name
  rm -rf "$model"
  # shellcheck disable=SC2086  # extra holds separate options
  if ! "$b" --no-db synth --preset "$config" $extra --dtype bf16 --out "$model" > "$out/synth-$name.txt" 2>&1; then
    say "synth $name failed (see synth-$name.txt)"
    continue
  fi
  say "synth $name done"
  bench "$name-A1" "$a" "$model"
  bench "$name-B1" "$b" "$model"
  bench "$name-A2" "$a" "$model"
  bench "$name-B2" "$b" "$model"
  for v in "$@"; do
    IFS=, read -ra parts <<< "$v"
    label=$name-B
    for x in "${parts[@]}"; do label+=-${x%%=*}; done
    bench "$label" "$b" "$model" "${parts[@]}"
  done
  if [ -n "${LING_AB_KTRACE:-}" ]; then
    for side in A B; do
      bin=$a; [ $side = B ] && bin=$b
      csv=$out/$name-$side-ktrace.csv
      bench "$name-$side-traced" "$bin" "$model" "CUDA_INJECTION64_PATH=$LING_AB_KTRACE" "LING_KTRACE_OUT=$csv"
      python3 "$root/scripts/ktrace-summary.py" "$csv" --last 32 --nodes > "$out/$name-$side-ktrace.txt" 2>&1 &&
        say "$name-$side timeline: $(head -1 "$out/$name-$side-ktrace.txt")"
    done
  fi
  rm -rf "$model"
done
say "done"
