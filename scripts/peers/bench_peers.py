#!/usr/bin/env python3
"""Side-by-side kernel benchmark on one GPU (performance.md §6): runs `ling bench --backend cuda --json`, then the
peers at the same shapes in the same job, and prints ratios.

Peers: flash-linear-attention's Triton kernels chunk_simple_gla (Lightning prefill, chunk 64) and
fused_recurrent_simple_gla (decode step), called with the head-wise log decay g_gamma = -2^(-8(h+1)/H) like the
ling bench; a plain-PyTorch absorbed MLA decode (latent 512 + rope 64 bf16 cache, fp32 softmax); and the torch
device-to-device copy bandwidth; for the attention.prefill rows torch.nn.functional.scaled_dot_product_attention
(bf16, causal; the last chunk of a prefill, q_pos0 = S - T, as causal_lower_right(T, S), any other q_pos0 as an
explicit offset-causal boolean mask; GQA through enable_gqa) in two forms, the faster one reported: v at its own
width dv (whichever backend SDPA picks for dk != dv) and v zero-padded to dk (the flash backend needs dk == dv);
TFLOP/s count the visible pairs at the real dv for both; and torch.mm for the gemm.ceiling row; for gemm.bf16
rows torch.matmul (bf16, same M, N, K), for their fp32-output rows torch.mm(out_dtype=torch.float32); for moe.prefill rows a complete torch MoE layer (bf16 cast, stable sort
by expert, gather, torch._grouped_mm gate_up, SwiGLU, torch._grouped_mm down, weighted index_add_) on the routing
that ling used (its device router rebuilt here from the same seeded logits; the peer says "other counts" when the
rows per expert do not match the ling row's). fla is imported
from .cache/fla (scripts/peers/prepare_fla.sh) without running
its package __init__ (which pulls in the model layers and einops): only fla.ops.simple_gla's modules load.
Timing: triton.testing.do_bench(return_mode="median"), which flushes L2 before every call; random data.

Usage: python3 scripts/peers/bench_peers.py --ling build/tools/ling/ling [--fla .cache/fla] [--json out.json]
       [--ling-json saved.json]  (ling rows from a saved `ling bench --backend cuda --json` instead of a new run)
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


def attention_shape(r):
    """(T, S, pos0, nh, nkv, dk, dv) from an attention.prefill row's shape text ("T=.. S=.. pos0=.. ... bf16 ...")."""
    f = dict(kv.split("=") for kv in r["shape"].split(" bf16")[0].split())
    return tuple(int(f[x]) for x in ("T", "S", "pos0", "nh", "nkv", "dk", "dv"))


def sdpa_peer(r, torch):
    """Best of SDPA with v at width dv and with v zero-padded to dk, at the ling row's shape (bf16, causal)."""
    import torch.nn.functional as F
    T, S, pos0, H, Hkv, dk, dv = attention_shape(r)
    q = torch.rand(1, H, T, dk, device="cuda", dtype=torch.bfloat16) - 0.5
    k = torch.rand(1, Hkv, S, dk, device="cuda", dtype=torch.bfloat16) - 0.5
    v = torch.rand(1, Hkv, S, dv, device="cuda", dtype=torch.bfloat16) - 0.5
    if pos0 == 0 and T == S:
        mask, causal, how = None, True, "is_causal"
    elif pos0 == S - T:
        from torch.nn.attention.bias import causal_lower_right
        mask, causal, how = causal_lower_right(T, S), False, "causal_lower_right"
    else:
        mask = torch.arange(S, device="cuda")[None, :] <= (pos0 + torch.arange(T, device="cuda"))[:, None]
        causal, how = False, "bool mask"
    gqa = Hkv != H
    forms = [("v dv=%d" % dv, v)] + ([("v padded to %d" % dk, F.pad(v, (0, dk - dv)))] if dv < dk else [])
    best = None
    for name, vv in forms:
        fn = lambda vv=vv: F.scaled_dot_product_attention(q, k, vv, attn_mask=mask, is_causal=causal,
                                                          scale=dk ** -0.5, enable_gqa=gqa)[..., :dv]
        try:
            ms = median_ms(fn)
        except Exception as e:  # a form no backend accepts
            print(f"sdpa {name} at {r['shape']}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        if best is None or ms < best[1]:
            best = (name, ms)
    del q, k, v, forms
    if best is None:
        return None
    pairs = T * pos0 + T * (T + 1) / 2
    return {"op": "attention.prefill", "shape": r["shape"], "T": T, "nh": H,
            "peer": f"torch sdpa ({how}, {best[0]})", "ms": best[1],
            "gbps": (T * H * dk * 2 + S * Hkv * (dk + dv) * 2 + T * H * dv * 2) / (best[1] * 1e6),
            "tflops": 2 * (dk + dv) * H * pairs / (best[1] * 1e9)}


def fill_uniform(seed, n, lo, hi):
    """The values of ling's device fills (kernels/common/fill.cu: splitmix64 of (seed, index)), float32."""
    import numpy as np
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * (i + np.uint64(1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return np.float32(lo) + np.float32(hi - lo) * u


def ling_route(logits, k, n_group, topk_group, scale):
    """ref::moe_route / kernels/moe/moe_route.cu on the host (no bias): ids [n, k] int64, weights [n, k] float32."""
    import numpy as np
    e = np.exp(-logits.astype(np.float64)).astype(np.float32)
    s = np.float32(1) / (np.float32(1) + e)
    n, E = s.shape
    g = np.sort(s.reshape(n, n_group, E // n_group), axis=2)
    gs = g[:, :, -1] + g[:, :, -2]
    keep = np.argsort(-gs, axis=1, kind="stable")[:, :topk_group]
    mask = np.zeros((n, n_group), dtype=bool)
    np.put_along_axis(mask, keep, True, axis=1)
    sel = np.where(np.repeat(mask, E // n_group, axis=1), s, -np.inf)
    ids = np.argsort(-sel, axis=1, kind="stable")[:, :k]
    w = np.take_along_axis(s, ids, axis=1)
    w = w / (w.sum(axis=1, keepdims=True) + np.float32(1e-20)) * np.float32(scale)
    return ids, w.astype(np.float32)


def moe_peer(r, torch):
    """A complete torch MoE layer (fp32 x in, fp32 out) on the ling row's routing: bf16 cast, stable sort of the
    slots by expert, gather, torch._grouped_mm for gate_up, SwiGLU, torch._grouped_mm for down, weighted
    index_add_ of the slots into the tokens."""
    import numpy as np
    import torch.nn.functional as F
    f = dict(kv.split("=") for kv in r["shape"].split() if "=" in kv)
    n, H, I, E, k, seed = (int(f[x]) for x in ("n", "H", "I", "E", "k", "seed"))
    ids, w = ling_route(fill_uniform(seed, n * E, -4.0, 4.0).reshape(n, E), k, 8, 4, 2.5)
    counts = np.bincount(ids.reshape(-1), minlength=E)
    same = f"rows/expert {counts.min()}..{counts.max()}" in r["shape"]
    ids = torch.from_numpy(ids).cuda()
    w = torch.from_numpy(w).cuda()
    ag, ad = 3.0 / math.sqrt(H), 2.7 / math.sqrt(I)
    gu = torch.rand(E, 2 * I, H, device="cuda", dtype=torch.bfloat16).mul_(2 * ag).sub_(ag)  # in place: 17 GB at 2.5 dims
    dn = torch.rand(E, H, I, device="cuda", dtype=torch.bfloat16).mul_(2 * ad).sub_(ad)
    x = torch.rand(n, H, device="cuda") * 2 - 1
    gu_t, dn_t = gu.transpose(1, 2), dn.transpose(1, 2)  # [E, K, N] column-major, as _grouped_mm wants

    def layer():
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        offs = torch.cumsum(torch.bincount(flat, minlength=E), 0, dtype=torch.int32)
        tok = order // k
        xs = x.to(torch.bfloat16).index_select(0, tok)
        h = torch._grouped_mm(xs, gu_t, offs=offs)
        a = F.silu(h[:, :I]) * h[:, I:]
        y = torch._grouped_mm(a, dn_t, offs=offs)
        yw = y.float() * w.reshape(-1)[order].unsqueeze(1)
        return torch.zeros(n, H, device="cuda").index_add_(0, tok, yw)
    ms = median_ms(layer)
    del gu, dn, gu_t, dn_t
    return {"op": "moe.prefill", "shape": r["shape"], "batch": n,
            "peer": "torch _grouped_mm layer" + ("" if same else " (other counts)"), "ms": ms,
            "gbps": (E * 3 * H * I * 2 + n * H * 8) / (ms * 1e6), "tflops": n * k * 3 * H * I * 2 / (ms * 1e9)}


def gemm_peer(r, torch):
    """torch at the gemm row's M, N, K and output type: torch.matmul (bf16 in and out, fp32 accumulation) for
    gemm.bf16 rows, torch.mm(..., out_dtype=torch.float32) (bf16 in, fp32 out) for the fp32-output rows."""
    f = dict(kv.split("=") for kv in r["shape"].split() if "=" in kv)
    M, N, K = (int(f[x]) for x in ("M", "N", "K"))
    f32 = "fp32 out" in r["shape"]
    a = torch.rand(M, K, device="cuda", dtype=torch.bfloat16) - 0.5
    b = torch.rand(N, K, device="cuda", dtype=torch.bfloat16) - 0.5
    if f32:
        ms = median_ms(lambda: torch.mm(a, b.t(), out_dtype=torch.float32))
    else:
        ms = median_ms(lambda: torch.matmul(a, b.t()))
    del a, b
    return {"op": r["op"], "shape": r["shape"], "batch": M,
            "peer": "torch.mm bf16->fp32" if f32 else "torch.matmul bf16", "ms": ms,
            "gbps": (M * K + N * K) * 2 / (ms * 1e6) + M * N * (4 if f32 else 2) / (ms * 1e6),
            "tflops": 2 * M * N * K / (ms * 1e9)}


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
        elif r["op"] == "attention.prefill":
            p = sdpa_peer(r, torch)
            if p:
                out.append(p)
        elif r["op"] == "gemm.ceiling":
            a, b = (torch.rand(8192, 8192, device="cuda", dtype=torch.bfloat16) - 0.5 for _ in range(2))
            ms = median_ms(lambda: torch.mm(a, b))
            out.append({"op": r["op"], "batch": r["batch"], "peer": "torch.mm bf16 8192^3", "ms": ms,
                        "gbps": 8192 * 8192 * 6 / (ms * 1e6), "tflops": 2 * 8192 ** 3 / (ms * 1e9)})
            del a, b
        elif r["op"].startswith("gemm.bf16"):
            out.append(gemm_peer(r, torch))
        elif r["op"].startswith("moe.prefill"):
            out.append(moe_peer(r, torch))
        torch.cuda.empty_cache()
    return out


def key(r):
    if r["op"].startswith("gemm.bf16"):  # one peer per (M, N, K) and output type (tuned or not)
        return ("gemm.bf16", " ".join(r["shape"].split()[:3]), "fp32 out" in r["shape"])
    if r["op"].startswith("moe.prefill"):  # both GEMM paths: one peer per shape
        return ("moe.prefill", r["shape"].split(" seed")[0])
    if r["op"] == "attention.prefill":  # one peer for every CTA layout; the shape text tells the shapes apart
        return ("attention.prefill", r["shape"].split(" bf16")[0])
    op = "lightning.prefill" if r["op"].startswith("lightning.prefill") else r["op"]  # both precisions: one peer
    return (op, r.get("T", 0) if op != "lightning.decode" else 0, r.get("nh", 0),
            r.get("batch", 0) if op != "lightning.prefill" else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ling", required=True, help="path of the ling executable")
    ap.add_argument("--fla", default=os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "fla"))
    ap.add_argument("--json", help="write ling rows, peer rows and ratios here")
    ap.add_argument("--db", default="", help="results database for ling bench (default: ling's own)")
    ap.add_argument("--ling-json", help="ling rows from this saved `ling bench --backend cuda --json` output")
    a = ap.parse_args()
    cmd = [a.ling, "bench", "--backend", "cuda", "--json"] + (["--db", a.db] if a.db else [])
    if a.ling_json:
        ling = json.load(open(a.ling_json))
    else:
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
    att = [x for x in lines if x["ling"]["op"] == "attention.prefill"]
    gemm = next((x for x in lines if x["ling"]["op"] == "gemm.ceiling"), None)
    if att and gemm:
        g = gemm["ling"]["tflops"]
        gp = gemm["peer"]["tflops"] if gemm["peer"] else float("nan")
        print(f"\ncausal attention prefill, TFLOP/s of the visible pairs; ceiling: cuBLASLt bf16 8192^3 {g:.0f} "
              f"TFLOP/s (torch.mm {gp:.0f})")
        for x in att:
            r, p = x["ling"], x["peer"]
            layout = r["shape"].split("rows/warp/CTA ")[-1].split(",")[0]
            print(f"{r['shape'].split(' bf16')[0]:58} {layout:7} {r['ms']:9.3f} ms {r['tflops']:6.1f} TFLOP/s "
                  f"{100 * r['tflops'] / g:5.1f}% of gemm | {(p['peer'] if p else '-'):46} "
                  f"{(p['ms'] if p else float('nan')):9.3f} ms {(p['tflops'] if p else float('nan')):6.1f} TFLOP/s "
                  f"speed-up {x['speedup']:5.2f}")
    mine = [x for x in lines if x["ling"]["op"].startswith(("gemm.bf16", "moe.prefill"))]
    if mine:
        print("\nbf16 GEMMs and MoE prefill layers, TFLOP/s (ling: shape text gives the share of gemm.ceiling)")
        for x in mine:
            r, p = x["ling"], x["peer"]
            print(f"{r['op']:19} {r['shape'][:84]:84} {r['ms']:9.3f} ms {r['tflops']:6.1f} TFLOP/s | "
                  f"{(p['peer'] if p else '-'):36} {(p['ms'] if p else float('nan')):9.3f} ms "
                  f"{(p['tflops'] if p else float('nan')):6.1f} TFLOP/s speed-up {x['speedup']:5.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ling": ling, "peers": prow, "pairs": lines}, f, indent=1)


if __name__ == "__main__":
    main()
