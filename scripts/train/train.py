# Trains the two small Ling checkpoints on one GPU and exports them in the HF layout (issue 7):
#   ling20-gqa-6m   BailingMoeV2   (bailing_moe):   GQA + QK-norm + partial RoPE, sigmoid MoE, dense layer 0
#   ling25-hybrid-6m BailingMoeV2_5 (bailing_hybrid): Lightning + MLA (layer group 3), same FFN budget
# Steps: train a byte-level BPE tokenizer on KJV prose + synthetic text, train each model for a fixed number
# of steps (bf16 autocast, AdamW, aux-loss-free expert-bias update), measure held-out loss and a quick
# passkey check, save bf16 weights, then the parity logits (fp32 math, TF32 off, on the stored weights).
# Usage: python3 scripts/train/train.py --data DIR --out DIR [--steps N] [--dry-run]
# Determinism: every random choice comes from --seed; rows of batch i come from Random(seed, i).
import argparse
import csv
import json
import math
import os
import random
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from model import CausalLM, count_params  # noqa: E402

VOCAB = 8192
COMMON = {
    "vocab_size": VOCAB, "hidden_size": 192, "num_hidden_layers": 6, "num_attention_heads": 4,
    "head_dim": 64, "partial_rotary_factor": 0.5, "intermediate_size": 384, "first_k_dense_replace": 1,
    "num_experts": 8, "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "moe_intermediate_size": 64,
    "num_shared_experts": 1, "moe_shared_expert_intermediate_size": 64, "routed_scaling_factor": 2.5,
    "norm_topk_prob": True, "use_qk_norm": True, "rope_theta": 600000.0, "rope_scaling": None,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "hidden_act": "silu",
    "use_qkv_bias": False, "use_bias": False, "moe_router_enable_expert_bias": True, "score_function": "sigmoid",
    "router_dtype": "fp32", "num_nextn_predict_layers": 0, "use_rmsnorm": True, "attention_dropout": 0.0,
    "embedding_dropout": 0.0, "output_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
    "pad_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16",
}
MODELS = {
    "ling20-gqa-6m": dict(COMMON, architectures=["BailingMoeV2ForCausalLM"], model_type="bailing_moe",
                          num_key_value_heads=2),
    "ling25-hybrid-6m": dict(COMMON, architectures=["BailingMoeV2_5ForCausalLM"], model_type="bailing_hybrid",
                             num_key_value_heads=4, layer_group_size=3, group_norm_size=2, linear_silu=False,
                             q_lora_rank=64, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=32,
                             v_head_dim=32, rope_interleave=True, scoring_func="sigmoid", topk_method="noaux_tc",
                             moe_intermediate_size=48, moe_shared_expert_intermediate_size=48),
}
MIX = [("prose", 0.35), ("passkey", 0.35), ("magic", 0.15), ("arith", 0.15)]
SEQ = [(512, 128, 0.2), (1024, 64, 0.6), (2048, 32, 0.2)]  # (T, B, share): 64K tokens per step
PARITY_TEXT = ("In the beginning God created the heaven and the earth. The pass key is 4217. Remember it. "
               "What is the pass key? The pass key is 4217.\nQuestion: Let x = 3. What is x + 4?")


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def init_weights(model, L):
    g = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if p.dim() == 1:
            nn.init.ones_(p)
            continue
        std = 0.02 / math.sqrt(2 * L) if name.endswith(("dense.weight", "down_proj.weight")) else 0.02
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def batches(tok, prose, seed, n):
    """Batch i: one (T, B) shape and B rows, all drawn from Random(seed * 1000003 + i)."""
    s = D.Sampler(tok, prose, seed, MIX)
    for i in range(n):
        s.r = random.Random(seed * 1_000_003 + i)
        T, B, _ = s.r.choices(SEQ, [x[2] for x in SEQ])[0]
        yield s.batch(B, T)


def lr_at(step, total, peak, warm=100):
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(cfg, tok, prose, args, steps, seed, curve_path=None):
    torch.manual_seed(seed)
    model = CausalLM(cfg, dropout=args.dropout)
    init_weights(model, cfg["num_hidden_layers"])
    model.cuda()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "word_embeddings" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "word_embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    curve, tokens, t0 = [], 0, time.time()
    for step, batch in enumerate(batches(tok, prose, seed, steps)):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, steps, args.lr)
        batch = batch.cuda(non_blocking=True)
        x, y = batch[:, :-1], batch[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # aux-loss-free balancing: raise the bias of under-loaded experts
            for moe in model.moe_layers():
                load = moe.last_load.float()
                moe.gate.expert_bias.add_(args.bias_rate * torch.sign(load.mean() - load))
        tokens += x.numel()
        if step % 10 == 0 or step == steps - 1 or steps <= 50:
            lv = loss.item()
            curve.append((step, x.shape[1], round(lv, 5), round(float(gn), 4), time.time() - t0))
            if step % 100 == 0 or step == steps - 1:
                log(f"step {step}/{steps} T={x.shape[1]} loss {lv:.4f} gnorm {float(gn):.3f} "
                    f"{tokens / (time.time() - t0) / 1e3:.0f}K tok/s")
        if args.max_seconds and time.time() - t0 > args.max_seconds:
            log(f"wall-clock cap reached at step {step}")
            steps = step + 1
            break
    if curve_path:
        with open(curve_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "seq_len", "loss", "grad_norm", "seconds"])
            w.writerows(curve)
    return model, {"steps": steps, "tokens": tokens, "wall_s": round(time.time() - t0, 1),
                   "final_loss": curve[-1][2], "curve": curve}


@torch.no_grad()
def heldout_loss(model, ids, T=1024, maxwin=64):
    model.eval()
    n = min(maxwin, (len(ids) - 1) // T)
    tot, cnt = 0.0, 0
    for i in range(0, n, 16):
        rows = torch.stack([ids[j * T:j * T + T + 1] for j in range(i, min(n, i + 16))]).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg = model(rows[:, :-1])
        tot += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum").item()
        cnt += rows[:, 1:].numel()
    model.train()
    return tot / cnt, cnt


@torch.no_grad()
def passkey_check(model, tok, lengths, n, seed):
    """Greedy passkey accuracy with prompts built like `ling eval`'s (first generated line, digits exact)."""
    model.eval()
    s = D.Sampler(tok, torch.zeros(10, dtype=torch.long), seed, MIX)
    r = random.Random(seed)
    res = {}
    for L in lengths:
        prompts, keys = [], []
        for i in range(n):
            k = str(r.randint(1, 50000))
            needle = f"The pass key is {k}. Remember it. {k} is the pass key."
            prompts.append(s.needle_prompt(s.pk_prefix, lambda j: s.filler_ids, [(needle, 100.0 * i / (n - 1))],
                                           s.pk_q, L))
            keys.append(k)
        ids = torch.tensor(prompts).cuda()
        for _ in range(10):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
        ok = 0
        for i in range(n):
            text = tok.decode(ids[i, L:].tolist()).split("\n")[0]
            m = re.search(r"\d+", text)
            ok += int(m is not None and m.group(0) == keys[i])
        res[L] = ok / n
    model.train()
    return res


def export(model, cfg, tok, outdir, name):
    os.makedirs(outdir, exist_ok=True)
    sd = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    D.write_json(os.path.join(outdir, "config.json"), cfg)
    D.write_json(os.path.join(outdir, "generation_config.json"),
                 {"eos_token_id": [0, 1], "pad_token_id": 0, "do_sample": False, "max_new_tokens": 64})
    tok.save(os.path.join(outdir, "tokenizer.json"))
    D.write_json(os.path.join(outdir, "tokenizer_config.json"), D.tokenizer_config(cfg["max_position_embeddings"]))
    # Parity: a fresh fp32 model from the stored bf16 tensors, fp32 math, TF32 off.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref = CausalLM(cfg)
    ref.load_state_dict({k: v.float() for k, v in load_file(os.path.join(outdir, "model.safetensors")).items()},
                        strict=True)
    ref = ref.cuda().float().eval()
    ids = torch.tensor([tok.encode(PARITY_TEXT).ids[:48]], dtype=torch.long)
    with torch.no_grad():
        logits = ref(ids.cuda()).float().cpu()
    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()},
              os.path.join(outdir, "parity.safetensors"))
    return ids.shape[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--max-seconds", type=float, default=0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.1, help="residual dropout (training only)")
    ap.add_argument("--bias-rate", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--watchdog", type=float, default=0, help="dump Python stacks every N seconds")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    if args.watchdog:
        import faulthandler
        faulthandler.dump_traceback_later(args.watchdog, repeat=True)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    train_p, held_p = [], []
    for fn in ("kjv.txt", "handbook.txt"):  # the last 1/32 of each text is held out
        ps = D.load_prose(os.path.join(args.data, fn))
        n_held = len(ps) // 32
        train_p += ps[:-n_held]
        held_p += ps[-n_held:]
    paras = train_p + held_p
    n_held = len(held_p)
    t0 = time.time()
    log(f"{len(paras)} paragraphs; training the tokenizer")
    tok = D.train_tokenizer(train_p + D.synthetic_texts(random.Random(args.seed), 3000), VOCAB)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    enc = lambda ps: torch.tensor([i for e in tok.encode_batch([p + "\n" for p in ps]) for i in e.ids])
    prose, held = enc(train_p), enc(held_p)
    log(f"tokenizer {time.time() - t0:.1f}s; prose {len(prose)} tokens, held-out {len(held)} tokens")
    os.makedirs(args.out, exist_ok=True)

    if args.dry_run:
        for name in args.models.split(","):
            cfg = MODELS[name]
            log(name, "params", count_params(CausalLM(cfg)))
            _, a = train(cfg, tok, prose, args, args.steps, args.seed)
            _, b = train(cfg, tok, prose, args, args.steps, args.seed)
            same = [x[2] for x in a["curve"]] == [x[2] for x in b["curve"]]
            log(name, "dry-run losses", [x[2] for x in a["curve"]], "rerun identical:", same, f"{a['wall_s']}s")
        return

    for name in args.models.split(","):
        cfg = MODELS[name]
        outdir = os.path.join(args.out, name)
        os.makedirs(outdir, exist_ok=True)
        log(f"== {name}: {count_params(CausalLM(cfg))} parameters")
        model, info = train(cfg, tok, prose, args, args.steps, args.seed, os.path.join(outdir, "loss.csv"))
        hl, hn = heldout_loss(model, held)
        log(f"held-out loss {hl:.4f} over {hn} tokens")
        pk = passkey_check(model, tok, [512, 1024, 2048], 20, args.seed + 7)
        T = export(model, cfg, tok, outdir, name)
        info.pop("curve")
        info.update({"name": name, "params": count_params(model), "heldout_loss": round(hl, 4),
                     "heldout_ppl": round(math.exp(hl), 3), "heldout_tokens": hn, "passkey_check": pk,
                     "parity_tokens": T, "seed": args.seed, "lr": args.lr, "dropout": args.dropout, "mix": MIX, "seq": SEQ,
                     "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                     "prose_tokens": len(prose), "held_paragraphs": n_held})
        D.write_json(os.path.join(outdir, "metrics.json"), info)
        log(name, json.dumps(info))


if __name__ == "__main__":
    main()
