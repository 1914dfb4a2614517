"""PyTorch + PEFT reference for the LoRA training benchmark: tokens/s of one optimizer step of a LoRA
adapter on a frozen OpenELM on the CPU, fp32, the same step as bench/lora.bench.ts (zero_grad,
forward, cross-entropy + z-loss, backward, clip_grad_norm_(1.0) over the adapter, AdamW over the
adapter). Prints one JSON line.

  python bench/lora_pytorch.py --config-json '{...HF config...}' --batch 8 --seq 256 --steps 2 --warmup 1 --threads 2 \
      [--r 32 --alpha 32 --dropout 0.1] [--dora]

The model is an nn.Module tree with the module names of Apple's modeling_openelm.py (so PEFT wraps
the same five kinds of modules: token_embeddings, qkv_proj, out_proj, proj_1, proj_2), in fp32 with
fused scaled_dot_product_attention as Apple's code uses, and the tied head reading the base
embedding. The adapter comes from peft.get_peft_model with a LoraConfig, as a PEFT user makes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import peft
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import openelm_ref as ref  # noqa: E402


class RMSNorm(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return ref.rms_norm(x, self.weight)


class Attention(nn.Module):
    def __init__(self, cfg, i, cos, sin):
        super().__init__()
        d, hd = cfg.model_dim, cfg.head_dim
        self.nq, self.nk, self.hd = cfg.num_query_heads[i], cfg.num_kv_heads[i], hd
        self.qkv_proj = nn.Linear(d, (self.nq + 2 * self.nk) * hd, bias=False)
        self.q_norm, self.k_norm = RMSNorm(hd), RMSNorm(hd)
        self.out_proj = nn.Linear(self.nq * hd, d, bias=False)
        self.cos, self.sin = cos, sin

    def forward(self, x):
        b, s, _ = x.shape
        qkv = self.qkv_proj(x).reshape(b, s, self.nq + 2 * self.nk, self.hd).transpose(1, 2)
        q, k, v = qkv.split([self.nq, self.nk, self.nk], dim=1)
        q = ref.apply_rope(self.q_norm(q), self.cos[:s], self.sin[:s])
        k = ref.apply_rope(self.k_norm(k), self.cos[:s], self.sin[:s])
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.out_proj(o.transpose(1, 2).reshape(b, s, self.nq * self.hd))


class FeedForward(nn.Module):
    def __init__(self, cfg, i):
        super().__init__()
        self.f = cfg.ffn_dims[i]
        self.proj_1 = nn.Linear(cfg.model_dim, 2 * self.f, bias=False)
        self.proj_2 = nn.Linear(self.f, cfg.model_dim, bias=False)

    def forward(self, x):
        u = self.proj_1(x)
        return self.proj_2(F.silu(u[..., : self.f]) * u[..., self.f :])


class Layer(nn.Module):
    def __init__(self, cfg, i, cos, sin):
        super().__init__()
        self.attn, self.ffn = Attention(cfg, i, cos, sin), FeedForward(cfg, i)
        self.attn_norm, self.ffn_norm = RMSNorm(cfg.model_dim), RMSNorm(cfg.model_dim)

    def forward(self, x):
        h = x + self.attn(self.attn_norm(x))
        return h + self.ffn(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg, cos, sin):
        super().__init__()
        self.token_embeddings = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.layers = nn.ModuleList(Layer(cfg, i, cos, sin) for i in range(cfg.num_transformer_layers))
        self.norm = RMSNorm(cfg.model_dim)

    def forward(self, ids):
        x = self.token_embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class OpenELMForCausalLM(nn.Module):
    def __init__(self, cfg, seq):
        super().__init__()
        cos, sin = ref.rope_cos_sin(torch.arange(seq), cfg.head_dim, cfg.rope_freq_constant, torch.float32)
        self.transformer = Transformer(cfg, cos, sin)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        raise NotImplementedError

    def forward(self, ids):
        # Apple's tied head: F.linear on token_embeddings.weight, the base weight once PEFT wraps it
        return F.linear(self.transformer(ids), self.transformer.token_embeddings.weight)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-json", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=32)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--dora", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    raw = json.loads(args.config_json)
    raw.setdefault("max_context_length", 2048)
    cfg = ref.resolve_config(raw)
    gen = torch.Generator().manual_seed(1)
    model = OpenELMForCausalLM(cfg, args.seq)
    weights = ref.init_params(cfg, gen, dtype=torch.float32)
    model.load_state_dict(weights, strict=True)
    del weights
    config = peft.LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, use_dora=args.dora,
                             target_modules=["token_embeddings", "qkv_proj", "out_proj", "proj_1", "proj_2"], task_type="CAUSAL_LM")
    pm = peft.get_peft_model(model, config)
    pm.train()
    trainable = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    times, loss = [], float("nan")
    for s in range(args.warmup + args.steps):
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=gen)
        targets = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = pm.base_model(ids).reshape(args.batch * args.seq, -1)
        _ce, l = ref.lm_loss(logits, targets.reshape(-1), ref.Z_LOSS_COEF)
        l.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        loss = float(l.detach())
        if s >= args.warmup:
            times.append(dt)
    total = sum(times)
    print(json.dumps({
        "bench": "lora_pytorch", "params": sum(p.numel() for p in pm.parameters()), "trainable": sum(p.numel() for p in trainable),
        "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup, "threads": torch.get_num_threads(),
        "r": args.r, "alpha": args.alpha, "dropout": args.dropout, "dora": args.dora,
        "tokens_per_s": round(args.batch * args.seq * args.steps / total, 2), "seconds_per_step": [round(t, 3) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "last_loss": round(loss, 4),
        "loadavg": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__, "peft": peft.__version__,
    }))


if __name__ == "__main__":
    main()
