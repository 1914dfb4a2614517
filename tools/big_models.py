"""Random OpenELM checkpoints of the released sizes, and reference numbers to check our engine on them.

Models past 4 GiB (OpenELM-3B in bf16/f16/f32, 1.1B in f32) exercise the WASM backend's several
memories; nothing in CI runs them (they are GBs). This script writes one as an HF folder
(config.json + sharded model.safetensors) with CoreNet's initialisation, then computes with the
PyTorch reference (openelm_ref.py, float32 math on the stored values):

- `reference.json` "greedy": the greedy continuation of a fixed prompt;
- with --train: "train": the losses of two AdamW steps (fp32 master weights, clip 1.0, z-loss) on a
  fixed random batch, the recipe `bench/big-models.ts --train` replays on our engine, with the
  process's peak RSS (the parameters are trained in place: no second copy of them is held).

Usage:
  .venv/bin/python tools/big_models.py --size 3B --dtype bf16 --out /tmp/openelm-3b-bf16
  .venv/bin/python tools/big_models.py --size 1_1B --dtype f32 --out /tmp/openelm-1_1b-f32 --train
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openelm_ref as ref  # noqa: E402

SIZES = {
    "270M": dict(num_transformer_layers=16, model_dim=1280, head_dim=64),
    "450M": dict(num_transformer_layers=20, model_dim=1536, head_dim=64),
    "1_1B": dict(num_transformer_layers=28, model_dim=2048, head_dim=64),
    "3B": dict(num_transformer_layers=36, model_dim=3072, head_dim=128),
}
BASE = dict(
    model_type="openelm", num_gqa_groups=4, qkv_multipliers=[0.5, 1.0], ffn_multipliers=[0.5, 4.0], ffn_dim_divisor=256,
    ffn_with_glu=True, normalize_qk_projections=True, share_input_output_layers=True, rope_freq_constant=10000,
    rope_max_length=4096, max_context_length=2048, vocab_size=32000, bos_token_id=1, eos_token_id=2,
)
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
PROMPT = [1, 450, 7483, 310, 3444, 338, 3681, 29889, 450, 7483]
TRAIN = dict(B=1, T=64, seed=7, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, clip=1.0, z_loss=1e-4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=sorted(SIZES), required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--train", action="store_true", help="also record two AdamW steps' losses (needs ~4x the f32 weights in RAM)")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    a = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    raw = dict(BASE, **SIZES[a.size])
    cfg = ref.resolve_config(raw)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    stored = init_stored(cfg, DTYPES[a.dtype])
    write_sharded(stored, a.out, int(a.shard_gb * 2**30))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(dict(raw, torch_dtype={"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[a.dtype]), f, indent=1)
    print(f"wrote {a.out} in {time.time() - t0:.0f} s", file=sys.stderr)

    # the reference computes in f32 on exactly the stored values (converted one tensor at a time)
    params = {}
    for k in list(stored):
        params[k] = stored.pop(k).to(torch.float32)
    out: dict = {"size": a.size, "dtype": a.dtype, "prompt": PROMPT}
    t0 = time.time()
    with torch.no_grad():
        out["greedy"], out["greedy_gaps"] = ref.greedy(params, cfg, PROMPT, a.new_tokens)
    print(f"greedy {out['greedy']} in {time.time() - t0:.0f} s", file=sys.stderr)
    if a.train:
        out["train"] = two_steps(params, cfg)
        print(f"train losses {out['train']['losses']}", file=sys.stderr)
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(out, f, indent=1)


def init_stored(cfg, dtype: torch.dtype) -> dict:
    """ref.init_params drawn one tensor at a time and stored in `dtype` (no full f32 copy in memory)."""
    gen = torch.Generator().manual_seed(20240424)
    d, n = cfg.model_dim, cfg.num_transformer_layers
    depth_std = d**-0.5 * (2 * n) ** -0.5
    out = {}
    for name, shape in ref.param_shapes(cfg).items():
        if len(shape) == 1:
            w = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("token_embeddings.weight"):
            w = torch.randn(shape, generator=gen) * d**-0.5
        elif name.endswith("attn.out_proj.weight") or name.endswith("ffn.proj_2.weight"):
            w = torch.randn(shape, generator=gen) * depth_std
        else:
            w = torch.randn(shape, generator=gen) * shape[1] ** -0.5
        out[name] = w.to(dtype).contiguous()
    return out


def write_sharded(tensors: dict, out: str, shard_bytes: int) -> None:
    """model-0000i-of-0000n.safetensors + model.safetensors.index.json, as the hub's sharded folders."""
    shards, cur, size = [], {}, 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if cur and size + n > shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += n
    shards.append(cur)
    weight_map = {}
    for i, s in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(s, os.path.join(out, name), metadata={"format": "pt"})
        for k in s:
            weight_map[k] = name
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)


def two_steps(params: dict, cfg) -> dict:
    """Two AdamW steps (PyTorch's) with clipping and z-loss on one fixed random batch."""
    p = TRAIN
    g = torch.Generator().manual_seed(p["seed"])
    n = p["B"] * p["T"]
    inputs = torch.randint(0, cfg.vocab_size, (p["B"], p["T"]), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (p["B"], p["T"]), generator=g)
    # trained in place: a clone would hold the f32 weights twice (4.3 GB more for 1.1B)
    leaves = {k: v.requires_grad_(True) for k, v in params.items()}
    decay = [v for k, v in leaves.items() if ref.is_decayed(k, v)]
    rest = [v for k, v in leaves.items() if not ref.is_decayed(k, v)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": p["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
                            lr=p["lr"], betas=p["betas"], eps=p["eps"], foreach=False)
    losses, norms, step_s = [], [], []
    rss_before = peak_rss()
    for _ in range(2):
        t0 = time.time()
        opt.zero_grad()
        logits = ref.forward(leaves, cfg, inputs)
        _, loss = ref.lm_loss(logits, targets, z_coef=p["z_loss"])
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(leaves.values()), p["clip"])))
        opt.step()
        losses.append(loss.item())
        step_s.append(round(time.time() - t0, 2))
        print(f"step {len(losses)}: loss {losses[-1]} in {step_s[-1]} s, peak RSS {peak_rss() / 1e9:.2f} GB", file=sys.stderr)
    return {"losses": losses, "grad_norms": norms, "inputs": inputs.flatten().tolist()[:n], "targets": targets.flatten().tolist()[:n],
            **{k: v for k, v in p.items() if k != "betas"}, "betas": list(p["betas"]),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "step_s": step_s,
            "peak_rss_before_train_gb": round(rss_before / 1e9, 3), "peak_rss_gb": round(peak_rss() / 1e9, 3)}


def peak_rss() -> int:
    """The process's peak resident set so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
