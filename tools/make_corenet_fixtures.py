"""Write the CoreNet checkpoint fixtures under test/fixtures/corenet/ with real `torch.save`.

CoreNet (apple/corenet) saves a model's state dict, named as its GeneralGPTModel names the modules
(no `transformer.` prefix; per layer attn.qkv_proj, attn.q_norm, attn.k_norm, attn.out_proj,
ffn.proj_1, ffn.proj_2, ffn_norm, attn_norm), and a training state
{iterations, epoch, model_state_dict, optim_state_dict, best_metric, is_interval_ckpt}
(corenet/utils/checkpoint_utils.py). Its AdamW gets two parameter groups, weights with decay and
1-D tensors without, each carrying `param_names` (corenet/modeling/misc/common.py parameter_list).
The module below rebuilds that module tree (so `named_parameters()` has CoreNet's order) and the
grouping; `average_ckpts` is CoreNet's averaging (float64 sum, divide, cast back per key).

The MANIFEST records, for every tensor of every file, dtype, shape and the sha256 of its raw bytes,
so the TypeScript reader is checked without committing a second copy of the values.

Usage: .venv/bin/python tools/make_corenet_fixtures.py [--out test/fixtures/corenet]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openelm_ref as ref  # noqa: E402
from fixture_files import write_json  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# A tiny OpenELM with layer-wise scaling (2 layers, model_dim 32): HF vocab 80; CoreNet's embedding
# has 96 rows (padding index 80), as OpenELM's 32128 rows hold 32000 tokens + padding.
TINY = dict(
    architectures=["OpenELMForCausalLM"], model_type="openelm", activation_fn_name="swish",
    bos_token_id=1, eos_token_id=2, ffn_dim_divisor=16, ffn_multipliers=[1.0, 2.0], ffn_with_glu=True,
    head_dim=16, initializer_range=0.02, max_context_length=64, model_dim=32,
    normalization_layer_name="rms_norm", normalize_qk_projections=True, num_gqa_groups=2,
    num_transformer_layers=2, qkv_multipliers=[0.5, 2.0], rope_freq_constant=10000, rope_max_length=4096,
    share_input_output_layers=True, torch_dtype="float32", vocab_size=80,
)
TINY_ROWS = 96

# CoreNet's own "gpt-test" config (general_gpt.py gpt_configs), with a small vocabulary in the YAML.
GPT_TEST = dict(num_transformer_layers=1, model_dim=128, head_dim=64, num_gqa_groups=1,
                qkv_multipliers=[0.25, 0.5], ffn_multipliers=[0.25, 0.75], ffn_dim_divisor=256)
GPT_TEST_VOCAB, GPT_TEST_PAD = 264, 260


class RMSNorm(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))


class Attn(nn.Module):
    def __init__(self, d: int, hd: int, q: int, k: int):
        super().__init__()
        self.qkv_proj = nn.Linear(d, (q + 2 * k) * hd, bias=False)
        self.q_norm = RMSNorm(hd)
        self.k_norm = RMSNorm(hd)
        self.out_proj = nn.Linear(q * hd, d, bias=False)


class FFN(nn.Module):
    def __init__(self, d: int, f: int):
        super().__init__()
        self.proj_1 = nn.Linear(d, 2 * f, bias=False)
        self.proj_2 = nn.Linear(f, d, bias=False)


class Layer(nn.Module):
    def __init__(self, d, hd, q, k, f):
        super().__init__()
        self.attn = Attn(d, hd, q, k)
        self.ffn = FFN(d, f)
        self.ffn_norm = RMSNorm(d)
        self.attn_norm = RMSNorm(d)


class GeneralGPT(nn.Module):
    """The parameter tree of CoreNet's GeneralGPTModel (shared input/output layers)."""

    def __init__(self, cfg: ref.Config, rows: int):
        super().__init__()
        self.token_embeddings = nn.Embedding(rows, cfg.model_dim)
        self.layers = nn.ModuleList(
            Layer(cfg.model_dim, cfg.head_dim, cfg.num_query_heads[i], cfg.num_kv_heads[i], cfg.ffn_dims[i])
            for i in range(cfg.num_transformer_layers))
        self.norm = RMSNorm(cfg.model_dim)


def build(raw: dict, rows: int, seed: int) -> GeneralGPT:
    cfg = ref.resolve_config(raw)
    torch.manual_seed(seed)
    m = GeneralGPT(cfg, rows)
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.copy_(torch.randn(p.shape) * (0.1 if p.dim() == 1 else p.shape[-1] ** -0.5) + (1.0 if p.dim() == 1 else 0.0))
    return m


def parameter_list(model: nn.Module, weight_decay: float):
    """CoreNet's grouping with no_decay_bn_filter_bias: 1-D tensors get no decay."""
    wd, nd, wd_names, nd_names = [], [], [], []
    for name, p in model.named_parameters():
        if p.requires_grad and p.dim() == 1:
            nd.append(p); nd_names.append(name)
        elif p.requires_grad:
            wd.append(p); wd_names.append(name)
    return [{"params": wd, "weight_decay": weight_decay, "param_names": wd_names},
            {"params": nd, "weight_decay": 0.0, "param_names": nd_names}]


def average_ckpts(paths):
    """corenet/utils/checkpoint_utils.py average_ckpts."""
    avg, count, dtype = {}, {}, {}
    for c in paths:
        sd = torch.load(c, map_location="cpu")
        for k, v in sd.items():
            if k not in avg:
                dtype[k] = v.dtype
                avg[k] = v.clone().to(dtype=torch.float64)
                count[k] = 1.0
            else:
                avg[k] += v.to(dtype=torch.float64)
                count[k] += 1.0
    return {k: v.div(count[k]).to(dtype=dtype[k]) for k, v in avg.items()}


def describe(obj) -> dict:
    out = {}

    def walk(prefix, v):
        if isinstance(v, torch.Tensor):
            t = v.detach().contiguous()
            raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
            out[prefix] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                           "sha256": hashlib.sha256(raw).hexdigest(),
                           "first": [float(x) for x in t.reshape(-1)[:3].float()]}
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        else:
            out[prefix] = v if not (isinstance(v, float) and math.isinf(v)) else str(v)

    walk("", obj)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "corenet"))
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    manifest = {"generator": "tools/make_corenet_fixtures.py", "torch_version": torch.__version__, "files": {}}

    def save(name, obj):
        path = os.path.join(out, name)
        torch.save(obj, path)
        manifest["files"][name] = {"bytes": os.path.getsize(path), "content": describe(obj)}

    cfg = ref.resolve_config(TINY)
    with open(os.path.join(out, "tiny-config.json"), "w") as f:
        json.dump(dict(TINY, num_query_heads=cfg.num_query_heads, num_kv_heads=cfg.num_kv_heads), f, indent=2, sort_keys=True)

    # Weights-only state dicts, float32 and bfloat16.
    model = build(TINY, TINY_ROWS, 1)
    save("tiny-f32.pt", model.state_dict())
    save("tiny-bf16.pt", {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})

    # A training state after three AdamW steps with CoreNet's parameter groups.
    opt = torch.optim.AdamW(parameter_list(model, 0.1), lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        opt.zero_grad()
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    save("tiny-training.pt", {
        "iterations": 3, "epoch": 0, "model_state_dict": model.state_dict(), "optim_state_dict": opt.state_dict(),
        "best_metric": math.inf, "is_interval_ckpt": True,
    })

    # Averaging: three checkpoints with bf16 matrices and f32 norms, and CoreNet's average of them.
    paths = []
    for i in range(3):
        m = build(TINY, TINY_ROWS, 10 + i)
        sd = {k: (v.to(torch.bfloat16) if v.dim() == 2 else v.clone()) for k, v in m.state_dict().items()}
        name = f"avg-{i}.pt"
        save(name, sd)
        paths.append(os.path.join(out, name))
    manifest["average_of_avg_0_1_2"] = describe(average_ckpts(paths))

    # CoreNet's gpt-test size, named by a CoreNet YAML.
    gcfg = dict(GPT_TEST, vocab_size=GPT_TEST_PAD, max_context_length=128)
    gm = build(gcfg, GPT_TEST_VOCAB, 3)
    save("gpt-test-bf16.pt", {k: v.to(torch.bfloat16) for k, v in gm.state_dict().items()})
    with open(os.path.join(out, "gpt-test.yaml"), "w") as f:
        f.write(
            "# CoreNet's structure (projects/openelm/pretraining_configs), trimmed; model_name is CoreNet's gpt-test\n"
            f"_anchor_vocab_size: &_anchor_vocab_size {GPT_TEST_VOCAB}\n"
            f"_anchor_padding_index: &_anchor_padding_index {GPT_TEST_PAD}\n"
            "model:\n  language_modeling:\n    name: \"general_gpt\"\n    general_gpt:\n"
            "      model_name: \"gpt-test\"\n      vocab_size: *_anchor_vocab_size\n"
            "      max_context_length: 128\n      padding_index: *_anchor_padding_index\n")

    write_json(os.path.join(out, "MANIFEST.json"), manifest, indent=1, sort_keys=True)
    total = sum(v["bytes"] for v in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} .pt files, {total / 1e6:.2f} MB, to {out}")


if __name__ == "__main__":
    main()
