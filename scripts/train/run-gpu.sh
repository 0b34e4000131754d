#!/usr/bin/env bash
# Trains and exports both small Ling checkpoints on one GPU (about 7 minutes on an H100), as committed in
# models/. Prerequisite (on a Debian machine): python3 scripts/train/prepare_data.py .carry/train-data
# Needs python3 with torch, tokenizers and safetensors. Output: OUT_DIR/<model>/ (HF layout + parity + metrics).
set -euo pipefail
OUT_DIR=${1:-/tmp/ling-train}
export CUBLAS_WORKSPACE_CONFIG=:4096:8 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
for m in ling20-gqa-6m ling25-hybrid-6m; do
  python3 -W ignore scripts/train/train.py --data .carry/train-data --out "$OUT_DIR" --models "$m" \
    --steps 1200 --max-seconds 250
done
