"""PyTorch side of the GPU benchmark (bench/gpu/run.sh): OpenELM prefill and greedy decode in bf16,
and training tokens/s with MFU, on random weights of the released shapes, the same measurements as
bench/gpu/webgpu-bench.ts. Prints one JSON line per measurement.

  python3 bench/gpu/torch_bench.py [--infer 270m,1.1b] [--train 270m] [--prompt 512] [--gen 128]
      [--batch 8] [--seq 1024] [--steps 5] [--warmup 2] [--compile decode,train] [--compile-models 270m]
      [--device cuda]

The model is tools/openelm_ref.py's OpenELM (config resolution, RMSNorm with fp32 statistics, QK-norm,
rotate-half RoPE, SwiGLU, tied head) written as a PyTorch user would run it:
- decode "eager": one forward per token over a growing KV cache (torch.cat), argmax read back each
  token, as Hugging Face's generate() does without a static cache;
- decode "compiled": a preallocated (static) KV cache and a one-token step under
  torch.compile(mode="reduce-overhead"), which captures it in a CUDA graph;
- prefill: one eager forward of the prompt with fused causal attention (scaled_dot_product_attention);
- training: fp32 master weights under bf16 autocast, cross-entropy + z-loss, clip_grad_norm_(1.0),
  fused AdamW; eager, and the loss function under torch.compile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import openelm_ref as ref  # noqa: E402

BASE = {"num_gqa_groups": 4, "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 4.0], "ffn_dim_divisor": 256,
        "vocab_size": 32000, "max_context_length": 2048, "rope_freq_constant": 10000, "rope_max_length": 4096}
MODELS = {
    "270m": {**BASE, "num_transformer_layers": 16, "model_dim": 1280, "head_dim": 64},
    "450m": {**BASE, "num_transformer_layers": 20, "model_dim": 1536, "head_dim": 64},
    "1.1b": {**BASE, "num_transformer_layers": 28, "model_dim": 2048, "head_dim": 64},
    "3b": {**BASE, "num_transformer_layers": 36, "model_dim": 3072, "head_dim": 128},
    # for checking this script without a GPU
    "tiny": {**BASE, "num_transformer_layers": 2, "model_dim": 64, "head_dim": 16, "ffn_dim_divisor": 32, "vocab_size": 512},
}


def emit(obj):
    print(json.dumps(obj), flush=True)


class OpenELM(torch.nn.Module):
    def __init__(self, cfg: ref.Config, dtype: torch.dtype, device: str):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(1)
        params = ref.init_params(cfg, gen, dtype=torch.float32, norm_jitter=0.0)
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.to(device=device, dtype=dtype)) for k, v in params.items()})
        hd = cfg.head_dim
        cos, sin = ref.rope_cos_sin(torch.arange(cfg.max_context_length), hd, cfg.rope_freq_constant, torch.float32)
        self.register_buffer("cos", cos.to(device), persistent=False)
        self.register_buffer("sin", sin.to(device), persistent=False)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def block_qkv(self, i, x, pos_cos, pos_sin):
        c, hd = self.cfg, self.cfg.head_dim
        nq, nk = c.num_query_heads[i], c.num_kv_heads[i]
        b, s, _ = x.shape
        pre = f"transformer.layers.{i}."
        a = ref.rms_norm(x, self.w(pre + "attn_norm.weight"))
        heads = (a @ self.w(pre + "attn.qkv_proj.weight").T).reshape(b, s, nq + 2 * nk, hd).transpose(1, 2)
        q, k, v = heads.split([nq, nk, nk], dim=1)
        q = ref.apply_rope(ref.rms_norm(q, self.w(pre + "attn.q_norm.weight")), pos_cos, pos_sin)
        k = ref.apply_rope(ref.rms_norm(k, self.w(pre + "attn.k_norm.weight")), pos_cos, pos_sin)
        return q, k, v

    def block_rest(self, i, x, att):
        c = self.cfg
        pre = f"transformer.layers.{i}."
        b, s, _ = x.shape
        h = x + att.transpose(1, 2).reshape(b, s, -1) @ self.w(pre + "attn.out_proj.weight").T
        u = ref.rms_norm(h, self.w(pre + "ffn_norm.weight")) @ self.w(pre + "ffn.proj_1.weight").T
        f = c.ffn_dims[i]
        return h + (F.silu(u[..., :f]) * u[..., f:]) @ self.w(pre + "ffn.proj_2.weight").T

    def head(self, x):
        x = ref.rms_norm(x, self.w("transformer.norm.weight"))
        return x @ self.w("transformer.token_embeddings.weight").T

    def forward(self, ids):
        """Causal forward of [B, S] ids from position 0 (training, prefill): logits [B, S, V]."""
        s = ids.shape[1]
        x = self.w("transformer.token_embeddings.weight")[ids]
        cos, sin = self.cos[:s], self.sin[:s]
        for i in range(self.cfg.num_transformer_layers):
            q, k, v = self.block_qkv(i, x, cos, sin)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = self.block_rest(i, x, att)
        return self.head(x)

    def step_dynamic(self, ids, past):
        """HF-style cached step: `past` is a list of (k, v) per layer grown with torch.cat."""
        s = ids.shape[1]
        p0 = past[0][0].shape[2] if past else 0
        x = self.w("transformer.token_embeddings.weight")[ids]
        cos, sin = self.cos[p0:p0 + s], self.sin[p0:p0 + s]
        new = []
        for i in range(self.cfg.num_transformer_layers):
            q, k, v = self.block_qkv(i, x, cos, sin)
            if past:
                k = torch.cat([past[i][0], k], dim=2)
                v = torch.cat([past[i][1], v], dim=2)
            new.append((k, v))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=(p0 == 0 and s > 1), enable_gqa=True)
            x = self.block_rest(i, x, att)
        return self.head(x[:, -1:]), new

    def step_static(self, ids, pos, kc, vc):
        """One token at position `pos` (a 1-element device tensor) over static caches [1, Hkv, cap, hd]."""
        x = self.w("transformer.token_embeddings.weight")[ids]
        cos, sin = self.cos[pos], self.sin[pos]
        cap = kc[0].shape[2]
        mask = (torch.arange(cap, device=ids.device) <= pos).view(1, 1, 1, cap)
        for i in range(self.cfg.num_transformer_layers):
            q, k, v = self.block_qkv(i, x, cos, sin)
            kc[i].index_copy_(2, pos, k)
            vc[i].index_copy_(2, pos, v)
            att = F.scaled_dot_product_attention(q, kc[i], vc[i], attn_mask=mask, enable_gqa=True)
            x = self.block_rest(i, x, att)
        return self.head(x).argmax(-1)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def inference(name, args):
    cfg = ref.resolve_config(MODELS[name])
    dev = args.device
    dtype = torch.bfloat16
    model = OpenELM(cfg, dtype, dev).eval()
    n_params = sum(p.numel() for p in model.parameters())
    P, G = args.prompt, args.gen
    gen = torch.Generator().manual_seed(5)
    prompt = torch.randint(3, cfg.vocab_size, (1, P), generator=gen).to(dev)
    with torch.inference_mode():
        # prefill: the prompt's forward with its KV cache, and the first greedy token
        pre = []
        for r in range(args.repeats + 1):
            t, _ = timed(dev, lambda: model.step_dynamic(prompt, None)[0].argmax(-1).item())
            if r:
                pre.append(t)
        # eager decode: growing cache, one .item() per token
        dec = []
        for r in range(args.repeats + 1):
            logits, past = model.step_dynamic(prompt, None)
            nxt = logits.argmax(-1)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(G):
                logits, past = model.step_dynamic(nxt, past)
                nxt = logits.argmax(-1)
                nxt.item()
            sync(dev)
            if r:
                dec.append(time.perf_counter() - t0)
    emit({"backend": "pytorch", "what": "inference", "mode": "eager", "model": name, "params": n_params, "dtype": "bf16",
          "prompt_tokens": P, "gen_tokens": G, "prefill_tok_s": round(P / statistics.median(pre), 1),
          "decode_tok_s": round(G / statistics.median(dec), 1), "device": device_name(dev), "torch": torch.__version__})
    if "decode" in args.compile and name in args.compile_models:
        compiled_decode(name, cfg, model, prompt, args)
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()


def compiled_decode(name, cfg, model, prompt, args):
    dev, P, G = args.device, args.prompt, args.gen
    cap = P + G + 1
    hd = cfg.head_dim
    kc = [torch.zeros(1, cfg.num_kv_heads[i], cap, hd, device=dev, dtype=torch.bfloat16) for i in range(cfg.num_transformer_layers)]
    vc = [torch.zeros_like(t) for t in kc]
    for t in kc + vc:
        torch._dynamo.mark_static_address(t)  # updated in place: keep them out of the graph's copies
    step = torch.compile(model.step_static, mode="reduce-overhead", fullgraph=True)
    t_compile = time.perf_counter()
    with torch.inference_mode():
        def run():
            for t in kc + vc:
                t.zero_()
            nxt = prompt[:, :1]
            # the prompt goes through the same step (its speed is not measured here)
            for j in range(P):
                nxt = step(prompt[:, j:j + 1], torch.tensor([j], device=dev), kc, vc).clone()
            sync(dev)
            t0 = time.perf_counter()
            for j in range(P, P + G):
                nxt = step(nxt.view(1, 1), torch.tensor([j], device=dev), kc, vc).clone()
                nxt.item()
            sync(dev)
            return time.perf_counter() - t0
        run()  # compile and capture
        compile_s = time.perf_counter() - t_compile
        dec = [run() for _ in range(args.repeats)]
    emit({"backend": "pytorch", "what": "inference", "mode": "static cache + torch.compile(reduce-overhead)", "model": name,
          "dtype": "bf16", "gen_tokens": G, "decode_tok_s": round(G / statistics.median(dec), 1),
          "compile_and_first_run_s": round(compile_s, 1), "device": device_name(dev), "torch": torch.__version__})


def training(name, args):
    cfg = ref.resolve_config(MODELS[name])
    dev = args.device
    model = OpenELM(cfg, torch.float32, dev).train()
    n_params = sum(p.numel() for p in model.parameters())
    B, T = args.batch, args.seq
    decay = [p for k, p in model.p.items() if p.dim() == 2]
    no_decay = [p for k, p in model.p.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=(dev == "cuda"))
    gen = torch.Generator().manual_seed(9)

    def loss_fn(ids, targets):
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=(dev == "cuda")):
            logits = model(ids).float()
        lse = torch.logsumexp(logits, dim=-1)
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        return ce + 1e-4 * (lse * lse).mean()

    modes = [("eager", loss_fn)]
    if "train" in args.compile and name in args.compile_models:
        modes.append(("torch.compile", torch.compile(loss_fn)))
    attn = sum(6 * T * q * cfg.head_dim for q in cfg.num_query_heads)
    flops_per_token = 6 * n_params + attn
    for mode, fn in modes:
        times = []
        loss = float("nan")
        t_first = time.perf_counter()
        for s in range(args.warmup + args.steps):
            ids = torch.randint(0, cfg.vocab_size, (B, T), generator=gen).to(dev)
            targets = torch.randint(0, cfg.vocab_size, (B, T), generator=gen).to(dev)

            def step():
                opt.zero_grad(set_to_none=True)
                l_ = fn(ids, targets)
                l_.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                return l_
            t, l = timed(dev, step)
            if s == args.warmup - 1:
                warm_s = time.perf_counter() - t_first
            if s >= args.warmup:
                times.append(t)
            loss = l.item()
        tok_s = B * T / statistics.median(times)
        emit({"backend": "pytorch", "what": "training", "mode": mode, "model": name, "params": n_params, "batch": B, "seq": T,
              "precision": "bf16 autocast, fp32 master weights", "tokens_per_s": round(tok_s), "last_loss": round(loss, 4),
              "seconds_per_step": [round(t, 4) for t in times], "warmup_s": round(warm_s, 1) if args.warmup else None,
              "model_tflops": round(tok_s * flops_per_token / 1e12, 2),
              "mfu_vs_peak": round(tok_s * flops_per_token / (args.peak_tflops * 1e12), 4), "peak_tflops": args.peak_tflops,
              "device": device_name(dev), "torch": torch.__version__})
    del model, opt
    if dev == "cuda":
        torch.cuda.empty_cache()


def device_name(dev):
    return torch.cuda.get_device_name() if dev == "cuda" else "cpu"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--infer", default="270m,1.1b")
    ap.add_argument("--train", default="270m")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", default="decode,train", help="which compiled variants to run too: decode, train (comma list, or none)")
    ap.add_argument("--compile-models", default="270m", help="models that get the compiled variants (compiling takes minutes each)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200 SXM: 989)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    args.compile = [c for c in args.compile.split(",") if c and c != "none"]
    args.compile_models = [m for m in args.compile_models.split(",") if m]
    for name in [m for m in args.infer.split(",") if m and m != "none"]:
        try:
            inference(name, args)
        except Exception as e:  # one failed measurement must not lose the others
            emit({"backend": "pytorch", "what": "inference", "model": name, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-800:]})
    for name in [m for m in args.train.split(",") if m and m != "none"]:
        try:
            training(name, args)
        except Exception as e:
            emit({"backend": "pytorch", "what": "training", "model": name, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-800:]})


if __name__ == "__main__":
    main()
