"""PyTorch reference for the training benchmark: tokens/s of one optimizer step of OpenELM on the
CPU, fp32, the same step as bench/train.bench.ts (zero_grad, forward, cross-entropy + z-loss,
backward, clip_grad_norm_(1.0), AdamW). Prints one JSON line.

  python bench/train_pytorch.py --config-json '{...HF config...}' --batch 8 --seq 256 --steps 3 --warmup 1 --threads 2

The model is the OpenELM of tools/openelm_ref.py (same config resolution, init, RMSNorm, RoPE and
loss), written the way a PyTorch user would train it: fused scaled_dot_product_attention (causal,
GQA), logits for all rows at once, torch.optim.AdamW with PyTorch's default implementation for
CPU tensors. --attn ref uses the reference's explicit softmax(QKᵀ)V instead. --autocast bf16 runs
the forward (and so its backward) under torch.autocast('cpu', dtype=torch.bfloat16), PyTorch's own
CPU mixed precision: fp32 parameters, AdamW and gradients, bf16 matrix products.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import openelm_ref as ref  # noqa: E402

MODELS = {
    "35m": {
        "model_type": "openelm", "num_transformer_layers": 8, "model_dim": 512, "head_dim": 64, "num_gqa_groups": 4,
        "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 4.0], "ffn_dim_divisor": 256, "vocab_size": 32000,
        "max_context_length": 2048,
    },
    "270m": {
        "model_type": "openelm", "num_transformer_layers": 16, "model_dim": 1280, "head_dim": 64, "num_gqa_groups": 4,
        "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 4.0], "ffn_dim_divisor": 256, "vocab_size": 32000,
        "max_context_length": 2048,
    },
}


def forward_loss(params, cfg, ids, targets, cos, sin, attn: str, z_coef: float):
    b, t = ids.shape
    hd = cfg.head_dim
    emb = params["transformer.token_embeddings.weight"]
    x = emb[ids]
    for i in range(cfg.num_transformer_layers):
        p = f"transformer.layers.{i}."
        nq, nk = cfg.num_query_heads[i], cfg.num_kv_heads[i]
        a = ref.rms_norm(x, params[p + "attn_norm.weight"])
        qkv = a @ params[p + "attn.qkv_proj.weight"].T
        heads = qkv.reshape(b, t, nq + 2 * nk, hd).transpose(1, 2)
        q, k, v = heads.split([nq, nk, nk], dim=1)
        q = ref.apply_rope(ref.rms_norm(q, params[p + "attn.q_norm.weight"]), cos, sin)
        k = ref.apply_rope(ref.rms_norm(k, params[p + "attn.k_norm.weight"]), cos, sin)
        if attn == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            g = nq // nk
            kk, vv = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            s = (q @ kk.transpose(-1, -2)) / math.sqrt(hd)
            s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
            o = torch.softmax(s, dim=-1) @ vv
        h = x + o.transpose(1, 2).reshape(b, t, nq * hd) @ params[p + "attn.out_proj.weight"].T
        u = ref.rms_norm(h, params[p + "ffn_norm.weight"]) @ params[p + "ffn.proj_1.weight"].T
        f = cfg.ffn_dims[i]
        x = h + (F.silu(u[..., :f]) * u[..., f:]) @ params[p + "ffn.proj_2.weight"].T
    x = ref.rms_norm(x, params["transformer.norm.weight"])
    logits = (x @ emb.T).reshape(b * t, -1)
    _ce, loss = ref.lm_loss(logits, targets.reshape(-1), z_coef)
    return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="35m", choices=sorted(MODELS))
    ap.add_argument("--config-json", help="HF config (overrides --model)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "ref"])
    ap.add_argument("--autocast", default="off", choices=["off", "bf16"])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    raw = json.loads(args.config_json) if args.config_json else MODELS[args.model]
    raw.setdefault("max_context_length", 2048)
    cfg = ref.resolve_config(raw)
    batch = args.batch if args.batch is not None else (8 if cfg.model_dim <= 512 else 4)
    gen = torch.Generator().manual_seed(1)
    params = {k: v.requires_grad_(True) for k, v in ref.init_params(cfg, gen, dtype=torch.float32).items()}
    n_params = sum(v.numel() for v in params.values())
    decay = [v for k, v in params.items() if ref.is_decayed(k, v)]
    no_decay = [v for k, v in params.items() if not ref.is_decayed(k, v)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    cos, sin = ref.rope_cos_sin(torch.arange(args.seq), cfg.head_dim, cfg.rope_freq_constant, torch.float32)
    times, cpu = [], []
    loss = float("nan")
    for s in range(args.warmup + args.steps):
        ids = torch.randint(0, cfg.vocab_size, (batch, args.seq), generator=gen)
        targets = torch.randint(0, cfg.vocab_size, (batch, args.seq), generator=gen)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
            l = forward_loss(params, cfg, ids, targets, cos, sin, args.attn, ref.Z_LOSS_COEF)
        l.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        loss = float(l.detach())
        if s >= args.warmup:
            times.append(dt)
            cpu.append(dc)
    total = sum(times)
    print(json.dumps({
        "bench": "train_pytorch", "params": n_params, "layers": cfg.num_transformer_layers, "width": cfg.model_dim,
        "batch": batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup, "threads": torch.get_num_threads(),
        "attn": args.attn, "autocast": args.autocast, "tokens_per_s": round(batch * args.seq * args.steps / total, 2),
        "tokens_per_cpu_s": round(batch * args.seq * args.steps / sum(cpu), 2),
        "seconds_per_step": [round(t, 3) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "last_loss": round(loss, 4), "loadavg": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
