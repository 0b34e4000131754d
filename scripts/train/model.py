# PyTorch definitions of BailingMoeV2 (Ling 2.0: GQA + MoE) and BailingMoeV2_5 (Ling 2.5: Lightning + MLA
# + MoE), written from spec/architecture.md §2-§4. The module tree reproduces the official HF tensor names,
# so `state_dict()` is the HF checkpoint layout. Numerics follow the reference code: RMSNorm normalises in
# fp32 and multiplies the weight after the downcast (§2.2), the router runs in fp32 (§2.4), cos/sin in fp32
# cast to the model dtype, expert outputs combined in fp32. Lightning attention is computed in a chunked
# parallel form (§2.6 step 8) that equals the recurrence. Limits: no KV cache (training and full-sequence
# scoring only), no YaRN, no MTP layers, use_qkv_bias / use_bias unsupported (always false here).
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """§2.2: fp32 normalise, cast back to the input dtype, then multiply by the weight."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(dt)


class GroupRMSNorm(nn.Module):
    """§2.6 step 9: RMSNorm over `groups` contiguous channel groups of [.., C], one weight per channel."""

    def __init__(self, dim, groups, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.groups = groups
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        shp = x.shape
        x32 = x.float().view(*shp[:-1], self.groups, shp[-1] // self.groups)
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.view(shp).to(dt)


def rope_cos_sin(cfg, T, device, dtype):
    """inv_freq_i = theta^(-2i/rd), rd = head_dim * partial_rotary_factor; cos/sin [T, rd] (cat(f, f))."""
    rd = int(cfg["head_dim"] * cfg["partial_rotary_factor"])
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, rd, 2, dtype=torch.int64, device=device).float() / rd))
    pos = torch.arange(T, device=device, dtype=torch.float32)
    freqs = torch.outer(pos, inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_partial_neox(x, cos, sin):
    """x [B, h, T, hd]; NeoX rotation of the first rd dims, the rest passes through (§2.5 step 3)."""
    rd = cos.shape[-1]
    xr, xp = x[..., :rd], x[..., rd:]
    xr = xr * cos + rotate_half(xr) * sin
    return torch.cat([xr, xp], dim=-1)


def apply_interleaved(x, cos, sin):
    """MLA rope (§2.7 step 4): HF de-interleaves pairs (2i, 2i+1) then applies rotate_half."""
    *lead, d = x.shape
    x = x.view(*lead, d // 2, 2).transpose(-1, -2).reshape(*lead, d)
    return x * cos + rotate_half(x) * sin


class MLP(nn.Module):
    def __init__(self, H, I):
        super().__init__()
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router (§2.4): fp32 logits, sigmoid, expert_bias for selection only, group-limited top-k."""

    def __init__(self, cfg):
        super().__init__()
        E, H = cfg["num_experts"], cfg["hidden_size"]
        self.weight = nn.Parameter(torch.empty(E, H))
        self.register_buffer("expert_bias", torch.zeros(E))
        self.E, self.k = E, cfg["num_experts_per_tok"]
        self.n_group, self.topk_group = cfg["n_group"], cfg["topk_group"]
        self.rsf = cfg["routed_scaling_factor"]

    def forward(self, x):  # x [N, H] -> idx [N, k] i64, w [N, k] f32
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = F.linear(x.float(), self.weight.float())
            s = torch.sigmoid(logits)
            s_sel = s + self.expert_bias.float()
            N = s.shape[0]
            grp = s_sel.view(N, self.n_group, -1).topk(2, dim=-1).values.sum(-1)           # [N, n_group]
            gidx = grp.topk(self.topk_group, dim=-1, sorted=False).indices
            gmask = torch.zeros_like(grp).scatter_(1, gidx, 1.0)
            emask = gmask.unsqueeze(-1).expand(N, self.n_group, self.E // self.n_group).reshape(N, self.E)
            masked = s_sel.masked_fill(emask == 0, float("-inf"))
            idx = masked.topk(self.k, dim=-1, sorted=True).indices
            w = s.gather(1, idx)
            if self.k > 1:
                w = w / (w.sum(-1, keepdim=True) + 1e-20)
            w = w * self.rsf
        return idx, w


class MoE(nn.Module):
    """Routed SwiGLU experts + one shared expert (width moe_intermediate_size * num_shared_experts)."""

    def __init__(self, cfg):
        super().__init__()
        H, I = cfg["hidden_size"], cfg["moe_intermediate_size"]
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList([MLP(H, I) for _ in range(cfg["num_experts"])])
        self.shared_experts = MLP(H, I * cfg["num_shared_experts"])
        self.last_load = None  # [E] tokens routed to each expert in the last forward (for the bias update)

    def forward(self, x):
        shp = x.shape
        xf = x.reshape(-1, shp[-1])
        idx, w = self.gate(xf)
        E = len(self.experts)
        # Dense evaluation of all experts (small E); unselected experts get weight 0, the sum is in fp32.
        wd = torch.zeros(xf.shape[0], E, device=x.device, dtype=torch.float32).scatter_(1, idx, w)
        self.last_load = torch.bincount(idx.flatten(), minlength=E).detach()
        Wg = torch.stack([e.gate_proj.weight for e in self.experts])   # [E, I, H]
        Wu = torch.stack([e.up_proj.weight for e in self.experts])
        Wd = torch.stack([e.down_proj.weight for e in self.experts])   # [E, H, I]
        cdt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else xf.dtype
        xe = xf.to(cdt)
        h = F.silu(torch.einsum("nh,eih->eni", xe, Wg.to(cdt))) * torch.einsum("nh,eih->eni", xe, Wu.to(cdt))
        out = torch.einsum("eni,ehi->enh", h, Wd.to(cdt))                 # [E, N, H] model dtype
        y = (out.float() * wd.t().unsqueeze(-1)).sum(0).to(out.dtype)
        y = y + self.shared_experts(xf).to(out.dtype)
        return y.view(shp)


class GQAAttention(nn.Module):
    """§2.5: fused [Q | K | V] projection, per-head QK RMSNorm, partial NeoX RoPE, causal softmax."""

    def __init__(self, cfg):
        super().__init__()
        H, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.query_key_value = nn.Linear(H, (nh + 2 * nkv) * hd, bias=False)
        self.query_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.key_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.dense = nn.Linear(nh * hd, H, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        qkv = self.query_key_value(x).view(B, T, self.nh + 2 * self.nkv, self.hd)
        q, k, v = qkv.split([self.nh, self.nkv, self.nkv], dim=2)
        q = self.query_layernorm(q).transpose(1, 2)
        k = self.key_layernorm(k).transpose(1, 2)
        v = v.transpose(1, 2)
        q = apply_partial_neox(q, cos.to(q.dtype), sin.to(q.dtype))
        k = apply_partial_neox(k, cos.to(k.dtype), sin.to(k.dtype))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.hd ** -0.5, enable_gqa=True)
        return self.dense(o.transpose(1, 2).reshape(B, T, self.nh * self.hd))


def lightning_slopes(nh):
    """§2.6 step 5 (ALiBi rule)."""
    def pow2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(nh).is_integer():
        return pow2(nh)
    p = 2 ** math.floor(math.log2(nh))
    return pow2(p) + pow2(2 * p)[0::2][: nh - p]


def lightning_chunked(q, k, v, g, scale, C=64):
    """Decayed linear attention, chunked parallel form of S_t = e^g S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.
    q, k, v [B, h, T, d] (fp32); g [h] log decay (< 0). Returns o [B, h, T, d] fp32."""
    B, h, T, d = q.shape
    pad = (-T) % C
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    n = (T + pad) // C
    q, k, v = (t.reshape(B, h, n, C, d) for t in (q, k, v))
    gi = g.view(1, h, 1, 1) * torch.arange(1, C + 1, device=q.device, dtype=torch.float32).view(1, 1, 1, C)
    gi = gi.squeeze(2)                                                       # [1, h, C]: g * i, i = 1..C
    ii = torch.arange(C, device=q.device)
    diff = (ii.view(C, 1) - ii.view(1, C)).float()                           # i - j
    dec = torch.exp(g.view(h, 1, 1) * diff.clamp(min=0)) * (diff >= 0).float()  # [h, C, C]
    att = torch.einsum("bhnid,bhnjd->bhnij", q, k) * dec.view(1, h, 1, C, C)
    o = torch.einsum("bhnij,bhnjd->bhnid", att, v)                           # intra-chunk
    kdec = k * torch.exp(g.view(1, h, 1, 1, 1) * (C - 1 - ii).float().view(1, 1, 1, C, 1))
    kv = torch.einsum("bhncd,bhnce->bhnde", kdec, v)                         # [B, h, n, d, d] per chunk
    qdec = q * torch.exp(gi).view(1, h, 1, C, 1)
    S = torch.zeros(B, h, d, d, device=q.device, dtype=torch.float32)
    eC = torch.exp(g * C).view(1, h, 1, 1)
    inter = []
    for c in range(n):
        inter.append(torch.einsum("bhid,bhde->bhie", qdec[:, :, c], S))
        S = eC * S + kv[:, :, c]
    o = o + torch.stack(inter, dim=2)
    return (o * scale).reshape(B, h, n * C, d)[:, :, :T]


class LightningAttention(nn.Module):
    """§2.6: MHA qkv, QK-norm, partial NeoX RoPE, decayed linear attention, GroupRMSNorm, sigmoid gate."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        H, nh, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["head_dim"]
        L = cfg["num_hidden_layers"]
        self.nh, self.hd = nh, hd
        self.query_key_value = nn.Linear(H, 3 * nh * hd, bias=False)
        self.query_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.key_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.g_proj = nn.Linear(H, nh * hd, bias=False)
        self.g_norm = GroupRMSNorm(nh * hd, cfg["group_norm_size"], cfg["rms_norm_eps"])
        self.dense = nn.Linear(nh * hd, H, bias=False)
        f = 1 - (layer_idx - 1) / (L - 1) + 1e-5                                  # HF rule (§7.1)
        g = -torch.tensor(lightning_slopes(nh), dtype=torch.float32) * f
        self.register_buffer("log_decay", g, persistent=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        qkv = self.query_key_value(x).view(B, T, 3 * self.nh, self.hd)
        q, k, v = qkv.split([self.nh, self.nh, self.nh], dim=2)
        q = self.query_layernorm(q).transpose(1, 2)
        k = self.key_layernorm(k).transpose(1, 2)
        v = v.transpose(1, 2)
        q = apply_partial_neox(q, cos.to(q.dtype), sin.to(q.dtype))
        k = apply_partial_neox(k, cos.to(k.dtype), sin.to(k.dtype))
        with torch.autocast(device_type=x.device.type, enabled=False):
            o = lightning_chunked(q.float(), k.float(), v.float(), self.log_decay, self.hd ** -0.5)
        o = o.to(v.dtype).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        o = self.g_norm(o) * torch.sigmoid(self.g_proj(x))
        return self.dense(o)


class MLAAttention(nn.Module):
    """§2.7 (prefill, non-absorbed form)."""

    def __init__(self, cfg):
        super().__init__()
        H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
        self.nh = nh
        self.d_nope, self.d_rope, self.d_v = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
        self.r_kv, self.r_q = cfg["kv_lora_rank"], cfg["q_lora_rank"]
        dqk = self.d_nope + self.d_rope
        if self.r_q:
            self.q_a_proj = nn.Linear(H, self.r_q, bias=False)
            self.q_a_layernorm = RMSNorm(self.r_q, 1e-6)
            self.q_b_proj = nn.Linear(self.r_q, nh * dqk, bias=False)
        else:
            self.q_proj = nn.Linear(H, nh * dqk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(H, self.r_kv + self.d_rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.r_kv, 1e-6)
        self.kv_b_proj = nn.Linear(self.r_kv, nh * (self.d_nope + self.d_v), bias=False)
        self.dense = nn.Linear(nh * self.d_v, H, bias=False)
        self.scaling = dqk ** -0.5

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if self.r_q else self.q_proj(x)
        q = q.view(B, T, self.nh, -1).transpose(1, 2)
        q_nope, q_pe = q.split([self.d_nope, self.d_rope], dim=-1)
        ckv = self.kv_a_proj_with_mqa(x)
        c, k_pe = ckv.split([self.r_kv, self.d_rope], dim=-1)
        kv = self.kv_b_proj(self.kv_a_layernorm(c)).view(B, T, self.nh, self.d_nope + self.d_v).transpose(1, 2)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)
        k_pe = k_pe.view(B, 1, T, self.d_rope)
        q_pe = apply_interleaved(q_pe, cos.to(q_pe.dtype), sin.to(q_pe.dtype))
        k_pe = apply_interleaved(k_pe, cos.to(k_pe.dtype), sin.to(k_pe.dtype))
        qs = torch.cat([q_nope, q_pe], dim=-1)
        ks = torch.cat([k_nope, k_pe.expand(B, self.nh, T, self.d_rope)], dim=-1)
        o = F.scaled_dot_product_attention(qs, ks, v, is_causal=True, scale=self.scaling)
        return self.dense(o.transpose(1, 2).reshape(B, T, self.nh * self.d_v))


def is_softmax_layer(cfg, i):
    """§3 HF rule incl. the tail clause; every layer for BailingMoeV2."""
    if cfg["model_type"] == "bailing_moe":
        return True
    G, L = cfg["layer_group_size"], cfg["num_hidden_layers"]
    return (i + 1) % G == 0 or i >= (L // G) * G


class DecoderLayer(nn.Module):
    def __init__(self, cfg, i, dropout=0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)  # training-time regulariser only (identity in eval mode)
        H, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(H, eps)
        self.post_attention_layernorm = RMSNorm(H, eps)
        if cfg["model_type"] == "bailing_moe":
            self.attention = GQAAttention(cfg)
        elif is_softmax_layer(cfg, i):
            self.attention = MLAAttention(cfg)
        else:
            self.attention = LightningAttention(cfg, i)
        self.is_mla = isinstance(self.attention, MLAAttention)
        dense = cfg["num_experts"] is None or i < cfg["first_k_dense_replace"]
        self.mlp = MLP(H, cfg["intermediate_size"]) if dense else MoE(cfg)

    def forward(self, h, rope, rope_mla):
        cos, sin = rope_mla if self.is_mla else rope
        h = h + self.drop(self.attention(self.input_layernorm(h), cos, sin))
        return h + self.drop(self.mlp(self.post_attention_layernorm(h)))


class Backbone(nn.Module):
    def __init__(self, cfg, dropout=0.0):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([DecoderLayer(cfg, i, dropout) for i in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class CausalLM(nn.Module):
    """BailingMoeV2ForCausalLM / BailingMoeV2_5ForCausalLM (no cache). forward(ids [B, T]) -> logits f32."""

    def __init__(self, cfg, dropout=0.0):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg, dropout)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def hidden(self, ids):
        B, T = ids.shape
        h = self.model.word_embeddings(ids)
        dt = h.dtype if not torch.is_autocast_enabled(ids.device.type) else torch.get_autocast_dtype(ids.device.type)
        rope = rope_cos_sin(self.cfg, T, ids.device, dt)
        rope_mla = rope  # same rope init (rd = head_dim * partial_rotary_factor must equal qk_rope_head_dim)
        for layer in self.model.layers:
            h = layer(h, rope, rope_mla)
        return self.model.norm(h)

    def forward(self, ids):
        return self.lm_head(self.hidden(ids)).float()

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if isinstance(l.mlp, MoE)]


def count_params(model):
    return sum(p.numel() for p in model.parameters()) + sum(
        m.gate.expert_bias.numel() for m in model.moe_layers())
