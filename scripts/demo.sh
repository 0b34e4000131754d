#!/usr/bin/env bash
# The README's main job on the embedded default: installs what is missing, builds the `ling` binary, then on
# the two committed trained models (models/ling20-gqa-6m, models/ling25-hybrid-6m):
#   inspect (side by side with the bundled real configs) -> eval (passkey at 1K and 2K tokens, held-out
#   perplexity) -> results (table and an SVG plot). A few minutes on a 2-core CPU. Results go to demo.sqlite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target ling
ling=./build/tools/ling/ling
export LING_DB=${LING_DB:-demo.sqlite}
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"

echo "== inspect: the trained models beside the real Ling configs"
$ling inspect models/ling20-gqa-6m models/ling25-hybrid-6m configs/ling-mini-2.0 configs/ring-mini-linear-2.0 \
  configs/ling-2.5-1t configs/kimi-k2 --context 4K,128K
$ling inspect models/ling20-gqa-6m models/ling25-hybrid-6m --check-weights --json > "$out/inspect.json"

runs=()
for m in ling20-gqa-6m ling25-hybrid-6m; do
  echo "== eval: $m"
  $ling eval models/$m --task passkey --contexts 1K,2K --depths 0,50,100 --samples 10 --seed 1 2>&1 | tee "$out/$m-passkey.log"
  $ling eval models/$m --task ppl --data models/heldout-kjv.txt --ctx 512 2>&1 | tee "$out/$m-ppl.log"
  runs+=($(grep -ho 'run [0-9a-f-]\{36\}' "$out/$m-passkey.log" "$out/$m-ppl.log" | cut -d' ' -f2))
done

echo "== results"
$ling results list
$ling results plot "${runs[@]}" --out "$out/results.svg"
echo "plot: $out/results.svg"
