#!/usr/bin/env python3
"""Side-by-side kernel benchmark on one GPU (performance.md §6): runs `ling bench --backend cuda --json`, then the
peers at the same shapes in the same job, and prints ratios.

Peers: flash-linear-attention's Triton kernels chunk_simple_gla (Lightning prefill, chunk 64) and
fused_recurrent_simple_gla (decode step), called with the head-wise log decay g_gamma = -2^(-8(h+1)/H) like the
ling bench; a plain-PyTorch absorbed MLA decode (latent 512 + rope 64 bf16 cache, fp32 softmax); and the torch
device-to-device copy bandwidth. fla is imported from .cache/fla (scripts/peers/prepare_fla.sh) without running
its package __init__ (which pulls in the model layers and einops): only fla.ops.simple_gla's modules load.
Timing: triton.testing.do_bench(return_mode="median"), which flushes L2 before every call; random data.

Usage: python3 scripts/peers/bench_peers.py --ling build/tools/ling/ling [--fla .cache/fla] [--json out.json]
"""
import argparse
import importlib
import json
import math
import os
import re
import subprocess
import sys
import types


def load_fla(path):
    """fla.ops.simple_gla's chunk and fused_recurrent entry points, bypassing fla/__init__ and fla/ops/__init__."""
    sys.path.insert(0, path)
    init = open(os.path.join(path, "fla", "__init__.py")).read()
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", init)
    for name in ("fla", "fla.ops"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [os.path.join(path, *name.split("."))]
            mod.__version__ = version.group(1) if version else "0"
            sys.modules[name] = mod
    chunk = importlib.import_module("fla.ops.simple_gla.chunk")
    rec = importlib.import_module("fla.ops.simple_gla.fused_recurrent")
    return chunk.chunk_simple_gla, rec.fused_recurrent_simple_gla


def log_decays(h, torch):
    return torch.tensor([-(2.0 ** (-8.0 * (i + 1) / h)) for i in range(h)], dtype=torch.float32, device="cuda")


def median_ms(fn):
    import triton.testing
    return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))


def peers(ling_rows, fla_path):
    import torch
    torch.manual_seed(0)
    out = []
    # copy ceiling through torch
    n = 1 << 28  # 1 GiB of fp32
    src = torch.rand(n, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    out.append({"op": "copy.d2d", "peer": "torch copy_ 1 GiB", "ms": ms, "gbps": 2 * n * 4 / (ms * 1e6)})
    del src, dst
    chunk_simple_gla, fused_recurrent_simple_gla = load_fla(fla_path)
    d = 128
    seen = set()
    for r in ling_rows:
        if key(r) in seen:  # one peer run per shape (ling may time several variants of it)
            continue
        seen.add(key(r))
        if r["op"].startswith("lightning.prefill"):
            T, H = r["T"], r["nh"]
            q, k, v = (torch.rand(1, T, H, d, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(3))
            h0 = torch.rand(1, H, d, d, device="cuda", dtype=torch.float32) - 0.5
            g = log_decays(H, torch)
            fn = lambda: chunk_simple_gla(q, k, v, g_gamma=g, scale=d ** -0.5, initial_state=h0,
                                          output_final_state=True)
            ms = median_ms(fn)
            byts = T * H * d * 2 * 4
            out.append({"op": r["op"], "T": T, "nh": H, "peer": "fla chunk_simple_gla", "ms": ms,
                        "gbps": byts / (ms * 1e6), "tflops": H * T * (4 * 64 * 128 + 4 * 128 * 128) / (ms * 1e9)})
            del q, k, v, h0
        elif r["op"] == "lightning.decode":
            B, H = r["batch"], r["nh"]
            q, k, v = (torch.rand(B, 1, H, d, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(3))
            h0 = torch.rand(B, H, d, d, device="cuda", dtype=torch.float32) - 0.5
            g = log_decays(H, torch)
            fn = lambda: fused_recurrent_simple_gla(q, k, v, g_gamma=g, scale=d ** -0.5, initial_state=h0,
                                                    output_final_state=True)
            ms = median_ms(fn)
            out.append({"op": r["op"], "batch": B, "nh": H, "peer": "fla fused_recurrent_simple_gla", "ms": ms,
                        "gbps": 2 * B * H * d * d * 4 / (ms * 1e6)})
            del q, k, v, h0
        elif r["op"] == "mla.decode":
            B, H, S = r["batch"], r["nh"], r["T"]
            q = torch.rand(B, H, 576, device="cuda", dtype=torch.bfloat16) - 0.5
            cache = torch.rand(B, S, 576, device="cuda", dtype=torch.bfloat16) - 0.5
            scale = 1.0 / math.sqrt(192.0)

            def mla():
                s = torch.einsum("bhd,bsd->bhs", q, cache).float() * scale
                p = torch.softmax(s, dim=-1).to(torch.bfloat16)
                return torch.einsum("bhs,bsd->bhd", p, cache[..., :512])
            ms = median_ms(mla)
            out.append({"op": r["op"], "batch": B, "nh": H, "T": S, "peer": "torch absorbed MLA (einsum)", "ms": ms,
                        "gbps": B * S * 576 * 2 / (ms * 1e6)})
            del q, cache
        torch.cuda.empty_cache()
    return out


def key(r):
    op = "lightning.prefill" if r["op"].startswith("lightning.prefill") else r["op"]  # both precisions: one peer
    return (op, r.get("T", 0) if op != "lightning.decode" else 0, r.get("nh", 0),
            r.get("batch", 0) if op != "lightning.prefill" else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ling", required=True, help="path of the ling executable")
    ap.add_argument("--fla", default=os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "fla"))
    ap.add_argument("--json", help="write ling rows, peer rows and ratios here")
    ap.add_argument("--db", default="", help="results database for ling bench (default: ling's own)")
    a = ap.parse_args()
    cmd = [a.ling, "bench", "--backend", "cuda", "--json"] + (["--db", a.db] if a.db else [])
    ling = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    import torch
    import triton
    fla_commit = open(os.path.join(a.fla, "COMMIT")).read().strip() if os.path.exists(os.path.join(a.fla, "COMMIT")) else "?"
    print(f"device: {ling['device']}, driver {ling['driver_version']}, CUDA runtime {ling['runtime_version']}")
    print(f"peers: torch {torch.__version__}, triton {triton.__version__}, fla {fla_commit[:12]}")
    prow = peers(ling["rows"], a.fla)
    pmap = {key(r): r for r in prow}
    copy_ling = ling["copy_gbps"]
    lines = []
    hdr = f"{'op':18} {'shape':44} {'ling ms':>9} {'ling GB/s':>9} {'%copy':>6} {'peer':31} {'peer ms':>9} {'peer GB/s':>9} {'speed-up':>8}"
    print(hdr)
    print("-" * len(hdr))
    for r in ling["rows"]:
        p = pmap.get(key(r))
        su = p["ms"] / r["ms"] if p else float("nan")
        lines.append({"ling": r, "peer": p, "speedup": su})
        print(f"{r['op']:18} {r['shape'][:44]:44} {r['ms']:9.4f} {r['gbps']:9.0f} {r['pct_of_copy']:6.1f} "
              f"{(p['peer'] if p else '-'):31} {(p['ms'] if p else float('nan')):9.4f} "
              f"{(p['gbps'] if p else float('nan')):9.0f} {su:8.2f}")
    print(f"\nceiling: ling cudaMemcpy {copy_ling:.0f} GB/s, torch copy_ {pmap[key({'op': 'copy.d2d'})]['gbps']:.0f} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ling": ling, "peers": prow, "pairs": lines}, f, indent=1)


if __name__ == "__main__":
    main()
