# Independent NumPy forward of BailingMoeV2 / BailingMoeV2_5 (architecture.md §2-§3; Lightning as the plain
# recurrence of §2.6 step 7, MoE routing per token as §2.4), used to check (a) that the semantics agree with
# the official-code golden fixtures and (b) that the PyTorch training model's parity logits agree with an
# independent implementation on the committed checkpoints. fp32 math; bf16 weights are upcast.
# Usage: python3 scripts/train/check_numpy.py MODEL_DIR REF.safetensors [T]   (compares logits[:, :T])
# Needs numpy only (Debian python3-numpy). Limits: full-sequence forward, no cache, no YaRN; slow for long T.
import json
import math
import struct
import sys

import numpy as np


def load_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        if v["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype={"F32": np.float32, "I64": np.int64, "F64": np.float64}[v["dtype"]])
        out[k] = a.reshape(v["shape"])
    return out


def rms(x, w, eps):
    x = x.astype(np.float32)
    return (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)).astype(np.float32) * w


def rope_tables(c, T):
    rd = int(c["head_dim"] * c["partial_rotary_factor"])
    inv = 1.0 / (c["rope_theta"] ** (np.arange(0, rd, 2, dtype=np.float32) / rd))
    f = np.outer(np.arange(T, dtype=np.float32), inv.astype(np.float32))
    emb = np.concatenate([f, f], -1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def rot_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], -1)


def neox(x, cos, sin):  # x [T, h, d]
    rd = cos.shape[-1]
    xr = x[..., :rd] * cos[:, None] + rot_half(x[..., :rd]) * sin[:, None]
    return np.concatenate([xr, x[..., rd:]], -1)


def interleaved(x, cos, sin):  # x [T, h, rd]: de-interleave (2i, 2i+1), then rotate_half
    T, h, d = x.shape
    x = x.reshape(T, h, d // 2, 2).transpose(0, 1, 3, 2).reshape(T, h, d)
    return x * cos[:, None] + rot_half(x) * sin[:, None]


def softmax_attn(q, k, v, scale):  # q, k [T, h, dq], v [T, h, dv]
    T = q.shape[0]
    s = np.einsum("ihd,jhd->hij", q, k).astype(np.float32) * scale
    s = np.where(np.tril(np.ones((T, T), bool))[None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hij,jhd->ihd", p, v)


def slopes(nh):
    def p2(n):
        st = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [st * st ** i for i in range(n)]
    if math.log2(nh).is_integer():
        return p2(nh)
    p = 2 ** math.floor(math.log2(nh))
    return p2(p) + p2(2 * p)[0::2][: nh - p]


def forward(W, c, ids):
    T, H = len(ids), c["hidden_size"]
    L, nh, hd, eps = c["num_hidden_layers"], c["num_attention_heads"], c["head_dim"], c["rms_norm_eps"]
    cos, sin = rope_tables(c, T)
    x = W["model.word_embeddings.weight"][ids].astype(np.float32)
    hybrid = c["model_type"] == "bailing_hybrid"
    for i in range(L):
        p = f"model.layers.{i}."
        a = p + "attention."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        G = c.get("layer_group_size", 1)
        if not hybrid:
            nkv = c["num_key_value_heads"]
            qkv = (h @ W[a + "query_key_value.weight"].T).reshape(T, nh + 2 * nkv, hd)
            q, k, v = qkv[:, :nh], qkv[:, nh:nh + nkv], qkv[:, nh + nkv:]
            q = neox(rms(q, W[a + "query_layernorm.weight"], eps), cos, sin)
            k = neox(rms(k, W[a + "key_layernorm.weight"], eps), cos, sin)
            rep = nh // nkv
            o = softmax_attn(q, np.repeat(k, rep, 1), np.repeat(v, rep, 1), hd ** -0.5).reshape(T, nh * hd)
            att = o @ W[a + "dense.weight"].T
        elif (i + 1) % G == 0 or i >= (L // G) * G:  # MLA
            dn, dr, dv, rkv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
            if c.get("q_lora_rank"):
                q = rms(h @ W[a + "q_a_proj.weight"].T, W[a + "q_a_layernorm.weight"], 1e-6) @ W[a + "q_b_proj.weight"].T
            else:
                q = h @ W[a + "q_proj.weight"].T
            q = q.reshape(T, nh, dn + dr)
            ckv = h @ W[a + "kv_a_proj_with_mqa.weight"].T
            cl, kpe = ckv[:, :rkv], ckv[:, rkv:]
            kv = (rms(cl, W[a + "kv_a_layernorm.weight"], 1e-6) @ W[a + "kv_b_proj.weight"].T).reshape(T, nh, dn + dv)
            qpe = interleaved(q[..., dn:], cos, sin)
            kpe = interleaved(kpe.reshape(T, 1, dr), cos, sin)
            qs = np.concatenate([q[..., :dn], qpe], -1)
            ks = np.concatenate([kv[..., :dn], np.repeat(kpe, nh, 1)], -1)
            o = softmax_attn(qs, ks, kv[..., dn:], (dn + dr) ** -0.5).reshape(T, nh * dv)
            att = o @ W[a + "dense.weight"].T
        else:  # Lightning, recurrence
            qkv = (h @ W[a + "query_key_value.weight"].T).reshape(T, 3 * nh, hd)
            q, k, v = qkv[:, :nh], qkv[:, nh:2 * nh], qkv[:, 2 * nh:]
            q = neox(rms(q, W[a + "query_layernorm.weight"], eps), cos, sin)
            k = neox(rms(k, W[a + "key_layernorm.weight"], eps), cos, sin)
            g = -np.array(slopes(nh), np.float32) * np.float32(1 - (i - 1) / (L - 1) + 1e-5)
            S = np.zeros((nh, hd, hd), np.float32)
            o = np.zeros((T, nh, hd), np.float32)
            for t in range(T):
                S = np.exp(g)[:, None, None] * S + np.einsum("hd,he->hde", k[t], v[t])
                o[t] = np.einsum("hd,hde->he", q[t] * hd ** -0.5, S)
            o = o.reshape(T, nh * hd)
            ng = c["group_norm_size"]
            og = o.reshape(T, ng, -1)
            o = (og / np.sqrt((og * og).mean(-1, keepdims=True) + eps)).reshape(T, nh * hd) * W[a + "g_norm.weight"]
            gate = 1 / (1 + np.exp(-(h @ W[a + "g_proj.weight"].T)))
            att = (o * gate) @ W[a + "dense.weight"].T
        x = x + att
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        m = p + "mlp."
        swiglu = lambda z, pre: ((lambda u: u / (1 + np.exp(-u)))(z @ W[pre + "gate_proj.weight"].T)
                                 * (z @ W[pre + "up_proj.weight"].T)) @ W[pre + "down_proj.weight"].T
        if i < c["first_k_dense_replace"]:
            x = x + swiglu(h, m)
            continue
        E, k_, ng_, tg = c["num_experts"], c["num_experts_per_tok"], c["n_group"], c["topk_group"]
        s = 1 / (1 + np.exp(-(h @ W[m + "gate.weight"].T)))
        sel = s + W[m + "gate.expert_bias"]
        y = np.zeros_like(x)
        for t in range(T):
            grp = np.sort(sel[t].reshape(ng_, -1), -1)[:, -2:].sum(-1)
            keep = np.argsort(-grp, kind="stable")[:tg]
            msk = np.full(E, -np.inf, np.float32)
            for gi in keep:
                lo = gi * (E // ng_)
                msk[lo:lo + E // ng_] = sel[t, lo:lo + E // ng_]
            idx = np.argsort(-msk, kind="stable")[:k_]
            w = s[t, idx] / (s[t, idx].sum() + 1e-20) * c["routed_scaling_factor"]
            for e, we in zip(idx, w):
                y[t] += we * swiglu(h[t:t + 1], f"{m}experts.{e}.")[0]
        x = x + y + swiglu(h, m + "shared_experts.")
    x = rms(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T


def main():
    d, ref = sys.argv[1], sys.argv[2]
    T = int(sys.argv[3]) if len(sys.argv) > 3 else 48
    c = json.load(open(f"{d}/config.json"))
    R = load_st(ref)
    ids = R["input_ids"][0, :T]
    lg = forward(load_st(f"{d}/model.safetensors"), c, ids)
    g = R["logits"][0, :T]
    diff = np.abs(lg - g)
    print(f"{d}: T={T} max|diff| {diff.max():.3e} (max|ref| {np.abs(g).max():.3f}); "
          f"argmax equal {int((lg.argmax(-1) == g.argmax(-1)).sum())}/{T}")
    sys.exit(0 if diff.max() < 1e-3 else 1)


if __name__ == "__main__":
    main()
