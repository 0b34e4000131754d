#!/usr/bin/env bash
# Installs what ling needs on Debian 12 (bookworm): compiler, CMake, Ninja and the libraries it links.
# Idempotent; uses sudo when not root. The CUDA toolkit is optional (the CUDA backend builds when nvcc exists).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
pkgs=(build-essential cmake ninja-build git pkg-config ccache
      libcli11-dev nlohmann-json3-dev libsqlite3-dev libgtest-dev libopenblas-dev libpcre2-dev libicu-dev
      bible-kjv-text bible-kjv python3)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
