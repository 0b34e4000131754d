#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on another machine (built here, run on a GPU host that may lack this
# machine's libraries): OUT_DIR/bin holds the stripped ling, test_kernels and test_engine_cuda (and
# libling_ktrace.so where it was built); OUT_DIR/lib the
# shared libraries they load that are neither the C/C++ runtime nor CUDA's (e.g. OpenBLAS and its Fortran
# runtime, ICU); OUT_DIR/goldens the fixture folders without their weights (for LING_FIXTURE_GOLDENS).
# On the GPU host: LD_LIBRARY_PATH=OUT_DIR/lib LING_FIXTURE_GOLDENS=OUT_DIR/goldens \
#                  bash scripts/gpu-check.sh OUT_DIR/bin RESULTS [--e2e]
# Usage: scripts/pack-bins.sh OUT_DIR [BUILD_DIR (default build)] [FIXTURES_DIR (default ../shared/fixtures)]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/pack-bins.sh OUT_DIR [BUILD_DIR] [FIXTURES_DIR]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
build=${2:-$root/build}
fixtures=${3:-$root/../shared/fixtures}
bins=("$build/tools/ling/ling" "$build/tests/test_kernels" "$build/tests/test_engine_cuda")
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "pack-bins: $b is missing (build with CUDA first)" >&2; exit 2; }
done
mkdir -p "$out/bin" "$out/lib" "$out/goldens"
for b in "${bins[@]}"; do strip -o "$out/bin/$(basename "$b")" "$b"; done
# the kernel-timeline library, where it was built (gpu-check traces a step with it)
[ -f "$build/tools/ktrace/libling_ktrace.so" ] && cp "$build/tools/ktrace/libling_ktrace.so" "$out/bin/"
# Libraries resolved by the loader here, minus the runtime every Linux host has and the CUDA driver/toolkit ones.
for b in "${bins[@]}"; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*|ld-linux*) ;;
    libcuda.so*|libcudart.so*|libcublas*|libnccl*|libnvrtc*|libnvJitLink*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
if [ -d "$fixtures" ]; then
  for f in "$fixtures"/*/; do
    name=$(basename "$f")
    mkdir -p "$out/goldens/$name"
    for g in config.json golden.safetensors README.md; do [ -f "$f/$g" ] && cp "$f/$g" "$out/goldens/$name/"; done
  done
fi
du -sh "$out"
