#!/usr/bin/env bash
# The README's test command: install dependencies, build, run every test that this machine can run
# (GPU tests skip themselves without a device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/fetch-test-data.sh
bash scripts/build.sh "$@"
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 1200
