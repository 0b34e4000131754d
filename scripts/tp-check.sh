#!/usr/bin/env bash
# Multi-GPU checks on a machine with 2+ GPUs (run where ling and test_engine_cuda are built):
#   1. tests/engine_cuda tensor-parallel suites (one process, TP/EP 2 and 4 vs one GPU; fixtures through 2 GPUs);
#   2. a 2-process launch (LING_RANK/LING_WORLD_SIZE + a rendezvous file) vs one GPU on a trained model;
#   3. a failing rank (rank 1 given a missing model) stops rank 0 with its error, within LING_NCCL_TIMEOUT.
# Usage: scripts/tp-check.sh BIN_DIR [OUT_DIR]   (BIN_DIR holds ling and test_engine_cuda)
set -uo pipefail
bin=$1
out=${2:-/tmp/tp-check}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
model=$root/models/ling25-hybrid-6m
prompt=$model/parity.safetensors
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
"$bin/test_engine_cuda" --gtest_filter='*TensorParallel*' > "$out/tests.txt" 2>&1
echo "tests rc=$?"; grep -E "PASSED|FAILED|SKIPPED" "$out/tests.txt" | tail -5
"$bin/ling" --no-db run "$model" --prompt-ids "$prompt" --max-new-tokens 8 --backend cuda --weight-dtype f32 \
  --dump "$out/one.safetensors" > "$out/one.txt" 2>&1
rv=$out/rendezvous
rm -f "$rv" "$rv.failed"
for r in 0 1; do
  LING_WORLD_SIZE=2 LING_RANK=$r LING_LOCAL_RANK=$r LING_RENDEZVOUS=$rv "$bin/ling" --no-db run "$model" \
    --prompt-ids "$prompt" --max-new-tokens 8 --backend cuda --weight-dtype f32 --dump "$out/mp.safetensors" \
    > "$out/mp$r.txt" 2>&1 &
done
wait
echo "2-process run:"; cat "$out/mp0.txt"
"$bin/ling" --no-db compare "$out/mp.safetensors" "$out/one.safetensors" --only logits decode_ids decode_logits
rm -f "$rv" "$rv.failed"
start=$(date +%s.%N)
LING_WORLD_SIZE=2 LING_RANK=0 LING_RENDEZVOUS=$rv LING_NCCL_TIMEOUT=60 "$bin/ling" --no-db run "$model" \
  --prompt-ids "$prompt" --max-new-tokens 8 --backend cuda > "$out/fail0.txt" 2>&1 &
p0=$!
LING_WORLD_SIZE=2 LING_RANK=1 LING_RENDEZVOUS=$rv LING_NCCL_TIMEOUT=60 "$bin/ling" --no-db run /nonexistent/model \
  --prompt-ids "$prompt" --max-new-tokens 8 --backend cuda > "$out/fail1.txt" 2>&1
rc1=$?
wait $p0
rc0=$?
end=$(date +%s.%N)
echo "failing rank: rc0=$rc0 rc1=$rc1 in $(awk "BEGIN{print $end - $start}") s"
cat "$out/fail0.txt" "$out/fail1.txt"
