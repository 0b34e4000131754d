#!/usr/bin/env bash
# One-GPU checks on an H100/H200 (run where ling, test_kernels and test_engine_cuda are built), in the order that
# answers the most per minute of device time; a summary line per step goes to OUT_DIR/summary.txt and stdout,
# the full logs beside it:
#   1. tests/kernels (every kernel against its lib/ref twin) and tests/engine_cuda (the fixtures, the trained
#      models, CUDA vs CPU on all families, graphs vs eager), the latter again with LING_CUDA_PDL=0, with
#      LING_CUDA_L2PF=1, with LING_CUDA_MLA_TMA=0, with LING_CUDA_MOE_FUSED=1, with LING_CUDA_LIGHTNING_FOLD=0,
#      with LING_CUDA_FOLD_CLUSTER=0 LING_CUDA_ROUTER_BF16=0, and with all seven opt-ins still to be timed on
#      (LING_CUDA_NORM_LATE, _ROUTER_HEAD, _STATE_EARLY, _GATE_UP_LEAN, _GATE_UP_L2, _LIGHTNING_LATE, _ROUTER_LATE;
#      each alone is one of the runs of CudaDecode.PlacementSwitchesEqualTheDefault);
#   2. `ling bench --backend cuda` kernel rows beside the copy ceiling (the decode GEMV, MoE routing and expert
#      rows, MLA decode variants, Lightning prefill/decode);
#   3. with --e2e: `ling synth` of a bf16 model with Ring-mini-linear-2.0 dims (33 GB, written in the background
#      while 1–2 run) and decode steps at batch 1 and 16, PDL off and on, as % of the bandwidth roofline; then
#      batch 1 with the default, with each of LING_CUDA_NORM_LATE=1 / LING_CUDA_ROUTER_HEAD=1 /
#      LING_CUDA_STATE_EARLY=1 / LING_CUDA_GATE_UP_LEAN=1 / LING_CUDA_GATE_UP_L2=1 / LING_CUDA_LIGHTNING_LATE=1 /
#      LING_CUDA_ROUTER_LATE=1 and with all seven, alternating, twice; with libling_ktrace.so in BIN_DIR, a kernel
#      timeline of the default and of all seven (scripts/ktrace-summary.py --nodes).
# Fixture and model folders: LING_FIXTURES_DIR / LING_MODELS_DIR (default: ../shared/fixtures and models/). On a
# machine without ../shared, LING_FIXTURE_GOLDENS=DIR (a copy of the fixture folders without their weights, which
# keeps a carried tree small) makes the fixtures in OUT_DIR/fixtures: weights from `ling synth --preset tiny` (the
# fixture models' generator), then the goldens, configs and READMEs of DIR.
# Each step runs under `timeout` (LING_GPU_CHECK_STEP_S, default 240 s; exit status 124 in its summary line).
# LING_GPU_CHECK_MODEL=DIR runs step 3 on that model instead (e.g. the Ling-2.5 cut), without synthesising one.
# Usage: scripts/gpu-check.sh BIN_DIR [OUT_DIR] [--e2e | --e2e-only]   (--e2e-only: step 3 alone, for a device call
#        of its own; BIN_DIR holds the three binaries, e.g. from a copy of
#        build/tools/ling/ling, build/tests/test_kernels, build/tests/test_engine_cuda)
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/gpu-check.sh BIN_DIR [OUT_DIR] [--e2e | --e2e-only]" >&2
  exit 2
fi
bin=$1
for b in ling test_kernels test_engine_cuda; do
  [ -x "$bin/$b" ] || { echo "gpu-check: $bin/$b is missing or not executable" >&2; exit 2; }
done
out=${2:-/tmp/gpu-check}
step_limit=${LING_GPU_CHECK_STEP_S:-240}  # seconds per step (a hung kernel costs one step, not the whole lease)
e2e=0 tests=1
[ "${3:-}" = "--e2e" ] && e2e=1
[ "${3:-}" = "--e2e-only" ] && e2e=1 tests=0
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
export LING_MODELS_DIR=${LING_MODELS_DIR:-$root/models}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$out/summary.txt"; }
if [ -n "${LING_FIXTURE_GOLDENS:-}" ]; then
  for fam in ling-2.0:ling20-tiny ling-2.5:ling25-tiny; do
    "$bin/ling" --no-db synth --family "${fam%%:*}" --preset tiny --out "$out/fixtures/${fam#*:}" \
      >> "$out/fixtures.txt" 2>&1 || say "synth of fixture ${fam#*:} failed (see fixtures.txt)"
    cp "$LING_FIXTURE_GOLDENS/${fam#*:}"/* "$out/fixtures/${fam#*:}/"
  done
  export LING_FIXTURES_DIR=$out/fixtures
fi
say "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
# LING_GPU_CHECK_MODEL=DIR: step 3 on that model folder (kept) instead of the synthesised Ring-mini-dims one
rm_dir=${LING_GPU_CHECK_MODEL:-$out/ring-mini}
model_name=$([ -n "${LING_GPU_CHECK_MODEL:-}" ] && basename "$rm_dir" || echo "Ring-mini dims")
if [ $e2e = 1 ]; then
  if [ -n "${LING_GPU_CHECK_MODEL:-}" ]; then
    echo "rc=0 (given: $rm_dir)" > "$out/synth.txt"
    synth=
  else
    ( "$bin/ling" --no-db synth --preset "$root/configs/ring-mini-linear-2.0/config.json" --dtype bf16 --out "$rm_dir" \
        > "$out/synth.txt" 2>&1; echo "rc=$?" >> "$out/synth.txt" ) &
    synth=$!
  fi
fi
# run_test NAME LOG [VAR=VALUE] [ARG...]: run $bin/NAME (with the variable set, when given) into $out/LOG.txt, one
# summary line: "NAME (VAR=VALUE) rc=… [ PASSED ] … [ FAILED ] …".
run_test() {
  local name=$1 log=$2 var=() label=$1
  shift 2
  while [[ ${1:-} == *=* && ${1:-} != --* ]]; do var+=("$1"); shift; done
  if ((${#var[@]})); then label="$name (${var[*]})"; fi
  env "${var[@]}" timeout "$step_limit" "$bin/$name" "$@" > "$out/$log.txt" 2>&1
  say "$label rc=$? $(grep -hE '^\[  (PASSED|FAILED)  \]' "$out/$log.txt" | tr '\n' ' ')"
}
engine=(--gtest_filter='-*TensorParallel*:*Tp*')
# The opt-ins still to be timed: each alone is in CudaDecode.PlacementSwitchesEqualTheDefault (in every run);
# here all engine tests with all of them on.
optins="LING_CUDA_NORM_LATE=1 LING_CUDA_ROUTER_HEAD=1 LING_CUDA_STATE_EARLY=1 LING_CUDA_GATE_UP_LEAN=1"
optins="$optins LING_CUDA_GATE_UP_L2=1 LING_CUDA_LIGHTNING_LATE=1 LING_CUDA_ROUTER_LATE=1"
if [ $tests = 1 ]; then
  run_test test_kernels test_kernels
  run_test test_engine_cuda test_engine_cuda "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_pdl0 LING_CUDA_PDL=0 "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_l2pf LING_CUDA_L2PF=1 "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_tma LING_CUDA_MLA_TMA=0 "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_moe_fused LING_CUDA_MOE_FUSED=1 "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_fold0 LING_CUDA_LIGHTNING_FOLD=0 "${engine[@]}"
  run_test test_engine_cuda test_engine_cuda_counters_f32router LING_CUDA_FOLD_CLUSTER=0 LING_CUDA_ROUTER_BF16=0 \
    "${engine[@]}"
  # shellcheck disable=SC2086 # several variables
  run_test test_engine_cuda test_engine_cuda_optins $optins "${engine[@]}"
  grep -h "^\[  FAILED  \]" "$out"/test_*.txt | sort -u | tee -a "$out/summary.txt"
  timeout "$step_limit" "$bin/ling" --no-db bench --backend cuda --prefill 8192 --batch 1 > "$out/kernels.txt" 2>&1
  say "kernel rows rc=$?"
  grep -hE "^(copy.d2d|gemv.bf16 .* M=1 |moe.route|moe.gate_up_swiglu|moe.down_combine|mla.decode|lightning.decode)" \
    "$out/kernels.txt" | tee -a "$out/summary.txt"
fi
if [ $e2e = 1 ]; then
  [ -n "$synth" ] && wait "$synth"
  say "synth $(tail -1 "$out/synth.txt")"
  for pdl in 0 1; do
    LING_CUDA_PDL=$pdl LING_LOG=info timeout "$step_limit" "$bin/ling" --no-db bench "$rm_dir" --backend cuda --prefill 256 --batch 1,16 --steps 32 \
      > "$out/e2e_pdl$pdl.txt" 2>&1
    say "$model_name decode, LING_CUDA_PDL=$pdl rc=$?"
    grep -hE "^(copy.d2d|engine.load|engine.decode)" "$out/e2e_pdl$pdl.txt" | tee -a "$out/summary.txt"
  done
  # the opt-ins still to be timed (README, switches): batch 1, alternating with the default, twice; the last
  # variant has them all on (~9 × 2 runs of ~15 s)
  all=$optins
  for rep in 1 2; do
    for var in LING_VARIANT=default $all "$all"; do
      tag=$([ "$var" = "$all" ] && echo all || echo "$var" | tr ' =' '_-')
      # shellcheck disable=SC2086 # a variant may set several variables
      env $var timeout "$step_limit" "$bin/ling" --no-db bench "$rm_dir" --backend cuda --prefill 64 --batch 1 \
        --steps 64 > "$out/e2e_$tag.$rep.txt" 2>&1
      say "$model_name B 1, $var rc=$? $(grep -hE '^engine.decode' "$out/e2e_$tag.$rep.txt")"
    done
  done
  # where the step goes, default and all opt-ins (a kernel timeline of 16 steps each; needs libling_ktrace.so in
  # BIN_DIR and the CUPTI library on the loader's path)
  if [ -f "$bin/libling_ktrace.so" ]; then
    for var in LING_VARIANT=default "$all"; do
      tag=$([ "$var" = "$all" ] && echo all || echo "$var" | tr ' =' '_-')
      # shellcheck disable=SC2086 # a variant may set several variables
      env $var CUDA_INJECTION64_PATH="$bin/libling_ktrace.so" LING_KTRACE_OUT="$out/trace_$tag.csv" \
        timeout "$step_limit" "$bin/ling" --no-db bench "$rm_dir" --backend cuda --prefill 64 --batch 1 --steps 16 \
        > "$out/trace_$tag.txt" 2>&1
      python3 "$root/scripts/ktrace-summary.py" "$out/trace_$tag.csv" --last 12 --nodes > "$out/trace_$tag.summary.txt" 2>&1
      say "kernel timeline, $var rc=$? (trace_$tag.summary.txt)"
      gzip -f "$out/trace_$tag.csv"
    done
  fi
  [ -n "${LING_GPU_CHECK_MODEL:-}" ] || rm -rf "$rm_dir"
fi
say done
