#!/usr/bin/env bash
# The README's main job on the embedded default: builds ling, then inspects the bundled model configs
# side by side (layer interleave, parameters, KV cache and Lightning state, memory and FLOPs vs context).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
./build/tools/ling/ling --no-db inspect configs/ling-mini-2.0 configs/ring-mini-linear-2.0 configs/ling-flash-2.0 configs/ling-2.5-1t configs/kimi-k2
