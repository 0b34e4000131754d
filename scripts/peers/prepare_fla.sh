#!/usr/bin/env bash
# Export flash-linear-attention (fla, pure Python + Triton) into the git-ignored folder .cache/fla of the checkout,
# from a local git directory of github.com/fla-org/flash-linear-attention (a bare mirror or a clone).
# Usage: scripts/peers/prepare_fla.sh <fla git dir> [commit]      (default commit: HEAD)
# The peer source is never committed: .cache/ is in .gitignore. The commit used is written to .cache/fla/COMMIT.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
gitdir=${1:?usage: prepare_fla.sh <fla git dir> [commit]}
rev=${2:-HEAD}
dest="$root/.cache/fla"
rm -rf "$dest"
mkdir -p "$dest"
git --git-dir="$gitdir" archive "$rev" | tar -x -C "$dest"
git --git-dir="$gitdir" rev-parse "$rev" > "$dest/COMMIT"
echo "fla $(cat "$dest/COMMIT") exported to $dest"
