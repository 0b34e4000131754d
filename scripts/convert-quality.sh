#!/usr/bin/env bash
# Quality of training-free GQA → MLA conversion on the trained GQA model (issue: calibrate/convert, §4):
# for each QK-norm fusion method (and Ant's constant with TransMLA's plain PCA, "ant-plain"; "lsq-refit-…":
# lsq followed by the sequential data refit of `ling convert --refit`) and kv_lora_rank at 7/8, 1/2, 1/4 and 1/8 of the GQA cache (2·nkv·head_dim =
# 256 values per token per layer), calibrate → convert → `ling eval` perplexity and KL divergence against the
# source on models/heldout-kjv.txt, and passkey at 1K. Every eval is stored in OUT/quality.sqlite; a Markdown
# table is printed and written to OUT/quality.md.
# Usage: scripts/convert-quality.sh [BUILD_DIR] [OUT_DIR] [CALIB_TEXT]
# CALIB_TEXT defaults to the first 300 KB of the training KJV text (Genesis onward).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/.cache/convert-quality}
calib_text=${3:-}
ling=$build/tools/ling/ling
src=$root/models/ling20-gqa-6m
mkdir -p "$out"
rm -f "$out"/calib-*.safetensors  # calibrations are shared between methods of this run only
db=$out/quality.sqlite
if [[ -z "$calib_text" ]]; then
  # Genesis onward from the `bible` reader of Debian's bible-kjv (the training text; the held-out perplexity
  # text is the end of Revelation), as scripts/train/prepare_data.py extracts it.
  if [[ -f $root/.carry/train-data/kjv.txt ]]; then
    head -c 300000 "$root/.carry/train-data/kjv.txt" > "$out/calib.txt"
  elif command -v bible > /dev/null; then
    # verse references stripped as prepare_data.py does; the whole range first (head would cut the pipe)
    bible -f Gen1:1-Deut34:12 > "$out/bible.txt"
    sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' "$out/bible.txt" | head -c 300000 > "$out/calib.txt" || true
  else
    echo "convert-quality: no calibration text: pass CALIB_TEXT or apt-get install bible-kjv" >&2
    exit 1
  fi
  calib_text=$out/calib.txt
fi
# <qk>-refit-<target>: the <qk> conversion followed by `--refit <target>` on the same calibration text
# (sequential data refit of the MLA layers, calib/refit.h), e.g. lsq-refit-temperature+dense-residual.
methods=${METHODS:-"ant-plain ant inv-rms vec-mse logit kl lsq lsq-refit-temperature+dense-residual"}
ranks=${RANKS:-"224 128 64 32"}
metric() {  # metric JSON NAME → value of the run-level metric NAME
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print([m['value'] for m in d if m['name']==sys.argv[2] and not m.get('bucket')][0])" "$1" "$2"
}
"$ling" --db "$db" eval "$src" -t ppl --data "$root/models/heldout-kjv.txt" --ctx 1024 --json > "$out/src-ppl.json" 2>/dev/null
"$ling" --db "$db" eval "$src" -t passkey --contexts 1K -n 10 --json > "$out/src-passkey.json" 2>/dev/null
ppl0=$(metric "$out/src-ppl.json" ppl)
pk0=$(metric "$out/src-passkey.json" score)
{
  echo "| QK method | kv_lora_rank | cache/token/layer (fraction of GQA) | PPL | PPL increase | KLD vs source | top-1 agreement | passkey 1K |"
  echo "|---|---|---|---|---|---|---|---|"
  echo "| (source GQA) | — | 256 (1) | $(printf %.2f "$ppl0") | — | — | — | $(printf %.0f%% "$pk0") |"
} > "$out/quality.md"
for m in $methods; do
  # ant-plain: Ant's constant with TransMLA's plain BKV-PCA and plain NoPE residue (the published recipe).
  qk=${m%-plain}
  qk=${qk%%-refit-*}
  extra=""
  [[ $m == *-plain ]] && extra="--plain-pca --no-expected-rotation"
  [[ $m == *-refit-* ]] && extra="--refit ${m#*-refit-} --refit-data $calib_text"
  [[ -f $out/calib-$qk.safetensors ]] ||
    "$ling" --db "$db" calibrate "$src" --data "$calib_text" --tokens 16384 --seq-len 512 --qk-method "$qk" \
      --out "$out/calib-$qk.safetensors" 2>/dev/null >/dev/null
  for r in $ranks; do
    dst=$out/mla-$m-$r
    "$ling" --db "$db" convert "$src" "$dst" --to mla --kv-lora-rank "$r" --calib "$out/calib-$qk.safetensors" \
      $extra --force --json > "$out/convert-$m-$r.json" 2>/dev/null
    "$ling" --db "$db" eval "$dst" -t kld --reference "$src" --data "$root/models/heldout-kjv.txt" --ctx 1024 \
      --json > "$out/kld-$m-$r.json" 2>/dev/null
    "$ling" --db "$db" eval "$dst" -t passkey --contexts 1K -n 10 --json > "$out/passkey-$m-$r.json" 2>/dev/null
    ppl=$(metric "$out/kld-$m-$r.json" ppl)
    kld=$(metric "$out/kld-$m-$r.json" kld_mean)
    top=$(metric "$out/kld-$m-$r.json" same_top_pct)
    pk=$(metric "$out/passkey-$m-$r.json" score)
    python3 - "$m" "$r" "$ppl" "$ppl0" "$kld" "$top" "$pk" >> "$out/quality.md" <<'PY'
import sys
m, r, ppl, ppl0, kld, top, pk = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
cache = r + 32
print(f"| {m} | {r} | {cache} ({cache/256:.3g}) | {ppl:.2f} | {100*(ppl/ppl0-1):+.1f}% | {kld:.4f} | {top:.1f}% | {pk:.0f}% |")
PY
    tail -1 "$out/quality.md"
  done
done
echo "table: $out/quality.md; runs in $db"
