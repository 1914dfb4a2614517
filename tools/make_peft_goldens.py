"""Write the adapter (LoRA / DoRA) fixtures under test/golden/peft/ with the real `peft` library.

The base model is the committed golden model test/golden/gqa4-hd32 (made by make_goldens.py; run
that first). It is laid out as Apple's HF module tree (openelm_module.py) and wrapped by
`peft.get_peft_model` with all five targets Apple used: token_embeddings, qkv_proj, out_proj,
proj_1, proj_2. PEFT itself initialises the adapter; the generator then moves every adapter tensor
off its init (PEFT's init makes lora_B and lora_embedding_A zero, which would hide half of the
gradients) and saves it with PEFT's save_pretrained: that folder is "a PEFT-made adapter".

Everything is computed in float64 from float32-exact values and stored as float32.

Usage: .venv/bin/python tools/make_peft_goldens.py [--golden test/golden]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
from typing import Dict, List, Optional

import numpy as np
import peft
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402
from fixture_files import save_safetensors, sha256, write_manifest  # noqa: E402,F401  (sha256: check_peft_goldens.py uses it)
import openelm_module as om  # noqa: E402
import openelm_ref as ref  # noqa: E402

GENERATOR = "tools/make_peft_goldens.py"
GENERATOR_VERSION = "2"
BASE = "gqa4-hd32"
SEED = 20240513
TARGETS = ["token_embeddings", "qkv_proj", "out_proj", "proj_1", "proj_2"]
R, ALPHA, DROPOUT = 4, 8, 0.1
FORWARD_B, FORWARD_T = 2, 12
CAPTURE_LAYER = 1
CURVE = dict(
    steps=5,
    optimizer="torch.optim.AdamW, float64, adapter tensors only (the base is frozen)",
    betas=[0.9, 0.95],
    eps=1e-8,
    weight_decay=0.1,
    weight_decay_applies_to="2-D adapter tensors (lora_A, lora_B, lora_embedding_A, lora_embedding_B); not lora_magnitude_vector",
    grad_clip_max_norm=1.0,
    max_lr=1e-2,
    min_lr=1e-3,
    warmup_init_lr=1e-3,
    warmup_steps=2,
    max_steps=5,
    z_loss_coef=ref.Z_LOSS_COEF,
    dropout="off (lora_dropout replaced by identity)",
)

# name -> (use_dora, use_rslora)
CASES = {"lora": (False, False), "lora-rslora": (False, True), "dora": (True, False)}


class MaskDropout(torch.nn.Module):
    """Dropout with a given keep-mask, so another implementation can replay it exactly."""

    def __init__(self, keep: torch.Tensor, p: float):
        super().__init__()
        self.keep, self.p = keep, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.keep.reshape(x.shape).to(x.dtype) / (1.0 - self.p)


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def lora_modules(model) -> Dict[str, torch.nn.Module]:
    """HF module name (e.g. transformer.layers.0.attn.qkv_proj) -> PEFT LoRA layer."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, peft.tuners.lora.LoraLayer):
            out[name.removeprefix("base_model.model.")] = mod
    return out


def adapter_params(model) -> Dict[str, torch.nn.Parameter]:
    """PEFT file key -> live parameter. The file key is the parameter name without the adapter name
    ("default") and, for DoRA's magnitude, without ".weight" (checked against PEFT's own state dict)."""
    out = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        k = n.replace(".default", "")
        if k.endswith("lora_magnitude_vector.weight"):
            k = k.removesuffix(".weight")
        out[k] = p
    saved = set(peft.get_peft_model_state_dict(model))
    assert set(out) == saved, f"adapter keys differ from PEFT's: {sorted(set(out) ^ saved)[:4]}"
    return out


def set_dropout(model, masks: Optional[Dict[str, torch.Tensor]]) -> None:
    """masks=None: identity (no dropout); else MaskDropout per linear module."""
    for name, mod in lora_modules(model).items():
        if isinstance(mod, peft.tuners.lora.Embedding):
            continue  # PEFT creates lora_dropout for embeddings but never applies it
        mod.lora_dropout["default"] = torch.nn.Identity() if masks is None else MaskDropout(masks[name], DROPOUT)


def make_adapter(cfg, base: Dict[str, torch.Tensor], use_dora: bool, use_rslora: bool, gen: torch.Generator):
    torch.manual_seed(SEED)  # PEFT's own init (kaiming for lora_A, normal for lora_embedding_B)
    model = om.build(cfg, base)
    config = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS, use_dora=use_dora,
                        use_rslora=use_rslora, task_type="CAUSAL_LM")
    pm = get_peft_model(model, config)
    with torch.no_grad():
        for k, p in adapter_params(pm).items():
            if k.endswith("lora_B.weight"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif k.endswith("lora_embedding_A"):
                p.copy_(0.01 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif k.endswith("lora_magnitude_vector"):
                p.mul_(1 + 0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            p.copy_(p.to(torch.float32).to(torch.float64))  # float32-exact, as the saved file holds them
    return pm


def save_adapter(pm, out_dir: str) -> None:
    """PEFT's save_pretrained, float32 tensors; only the two files an adapter consists of are kept."""
    with tempfile.TemporaryDirectory() as tmp:
        pm.float()
        pm.save_pretrained(tmp)
        pm.double()
        os.makedirs(out_dir, exist_ok=True)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copyfile(os.path.join(tmp, f), os.path.join(out_dir, f))


def loss_and_grads(pm, inputs, targets, prefix: str) -> Dict[str, torch.Tensor]:
    params = adapter_params(pm)
    pm.zero_grad(set_to_none=True)
    ce, loss = ref.lm_loss(pm.base_model(inputs), targets)
    loss.backward()
    out = {f"{prefix}.ce": f32(ce), f"{prefix}.loss": f32(loss)}
    for k, p in params.items():
        out[f"{prefix}.grad.{k}"] = f32(p.grad)
    return out


def capture_modules(pm, inputs, targets, names: List[str]) -> Dict[str, torch.Tensor]:
    """Per-module x, y, dy, and the gradients that module alone produces (A, B, magnitude, dx)."""
    mods = lora_modules(pm)
    cap: Dict[str, dict] = {n: {} for n in names}
    hooks = []
    for n in names:
        def fwd(mod, args, out, n=n):
            cap[n]["x"] = args[0].detach()
            cap[n]["y"] = out.detach()
            out.register_hook(lambda g, n=n: cap[n].__setitem__("dy", g.detach()))
        hooks.append(mods[n].register_forward_hook(fwd))
    pm.zero_grad(set_to_none=True)
    _, loss = ref.lm_loss(pm.base_model(inputs), targets)
    loss.backward()
    for h in hooks:
        h.remove()
    out: Dict[str, torch.Tensor] = {}
    params = adapter_params(pm)
    for n in names:
        c, mod = cap[n], mods[n]
        own = {k: p for k, p in params.items() if k.startswith(f"base_model.model.{n}.")}
        pm.zero_grad(set_to_none=True)
        if isinstance(mod, peft.tuners.lora.Embedding):
            x = c["x"]
            y = mod(x)
        else:
            x = c["x"].clone().requires_grad_(True)
            y = mod(x)
        assert torch.equal(y.detach(), c["y"]), f"{n}: replay differs"
        (y * c["dy"]).sum().backward()
        p = f"module.{n}"
        if x.dtype == torch.int64:
            out[f"{p}.ids"] = x.to(torch.int32).reshape(-1)
        else:
            out[f"{p}.x"] = f32(x.reshape(-1, x.shape[-1]))
            out[f"{p}.dx"] = f32(x.grad.reshape(-1, x.shape[-1]))
        out[f"{p}.y"] = f32(c["y"].reshape(-1, c["y"].shape[-1]))
        out[f"{p}.dy"] = f32(c["dy"].reshape(-1, c["dy"].shape[-1]))
        for k, q in own.items():
            out[f"{p}.grad.{k.removeprefix(f'base_model.model.{n}.')}"] = f32(q.grad)
    return out


def run_curve(pm, inputs, targets):
    params = adapter_params(pm)
    decay = [p for k, p in params.items() if p.dim() == 2]
    no_decay = [p for k, p in params.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": CURVE["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=CURVE["max_lr"], betas=tuple(CURVE["betas"]), eps=CURVE["eps"], foreach=False)
    losses, norms, lrs = [], [], []
    for t in range(CURVE["steps"]):
        lr = ref.corenet_lr(t, CURVE["max_lr"], CURVE["min_lr"], CURVE["warmup_init_lr"], CURVE["warmup_steps"],
                            CURVE["max_steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        _, loss = ref.lm_loss(pm.base_model(inputs[t]), targets[t])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), CURVE["grad_clip_max_norm"], foreach=False)
        opt.step()
        losses.append(float(loss.detach()))
        norms.append(float(norm))
        lrs.append(lr)
    out = {"curve.loss": f32(torch.tensor(losses)), "curve.grad_norm": f32(torch.tensor(norms)),
           "curve.lr": f32(torch.tensor(lrs))}
    for k, p in params.items():
        out[f"curve.final.{k}"] = f32(p)
    return out, norms


def merged_goldens(pm, cfg, base, ids, adapted_logits) -> (Dict[str, torch.Tensor], dict):
    """PEFT's merge_and_unload on a copy; our merged model keeps the base embedding as an untied head."""
    merged = copy.deepcopy(pm).merge_and_unload()
    sd = {k: v.detach() for k, v in merged.state_dict().items()}
    ours = om.build(cfg, {**sd, "lm_head.weight": base["transformer.token_embeddings.weight"]})
    peft_tied = om.build(cfg, sd)
    with torch.no_grad():
        ours_logits = ours(ids)
        tied_logits = peft_tied(ids)
    untied_err = float((ours_logits - adapted_logits).abs().max())
    tied_err = float((tied_logits - adapted_logits).abs().max())
    assert untied_err < 1e-10, f"merged (untied head) != applied: {untied_err}"
    keep = ["transformer.token_embeddings.weight"] + [f"transformer.layers.0.{m}.weight" for m in
                                                      ("attn.qkv_proj", "attn.out_proj", "ffn.proj_1", "ffn.proj_2")]
    out = {f"merged.{k}": f32(sd[k]) for k in keep}
    for k, v in sd.items():
        if k not in base:
            raise AssertionError(f"merge produced unexpected key {k}")
    return out, {"merged_untied_vs_applied_max_abs": untied_err, "peft_merge_and_unload_tied_vs_applied_max_abs": tied_err}


def main() -> None:
    # PEFT writes target_modules from a Python set; a fixed string hash seed keeps its order, and so
    # the bytes of adapter_config.json, the same from run to run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "test", "golden"))
    args = ap.parse_args()
    root = os.path.normpath(args.golden)
    out_root = os.path.join(root, "peft")
    torch.set_num_threads(1)

    raw = json.load(open(os.path.join(root, BASE, "config.json")))
    cfg = ref.resolve_config(raw)
    base = {k: v.to(torch.float64) for k, v in load_file(os.path.join(root, BASE, "model.safetensors")).items()}

    # The module tree computes exactly what openelm_ref computes.
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(3, cfg.vocab_size, (FORWARD_B, FORWARD_T), generator=gen)
    with torch.no_grad():
        plain = om.build(cfg, base)(ids)
        want = torch.stack([ref.forward(base, cfg, ids[b : b + 1])[0] for b in range(FORWARD_B)])
    assert float((plain - want).abs().max()) < 1e-12, "module tree and openelm_ref disagree"

    train_in, train_tg = mg.make_batch(gen, cfg.vocab_size, structured=False)
    batches = [mg.make_batch(gen, cfg.vocab_size, structured=True) for _ in range(CURVE["steps"])]
    curve_in = torch.stack([b[0] for b in batches])
    curve_tg = torch.stack([b[1] for b in batches])

    versions = {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "torch_version": torch.__version__,
                "peft_version": peft.__version__, "numpy_version": np.__version__,
                "python_version": platform.python_version()}
    manifest = {**versions, "base": BASE, "seed": SEED, "r": R, "lora_alpha": ALPHA, "lora_dropout": DROPOUT,
                "target_modules": TARGETS, "curve": CURVE, "cases": {}, "files": {}}

    for ci, (case, (use_dora, use_rslora)) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(SEED + 1 + ci)
        pm = make_adapter(cfg, base, use_dora, use_rslora, gen)
        d = os.path.join(out_root, case)
        save_adapter(pm, os.path.join(d, "adapter"))
        mods = lora_modules(pm)
        masks = {}
        for name, mod in mods.items():
            if isinstance(mod, peft.tuners.lora.Linear):
                keep = (torch.rand((train_in.numel(), mod.in_features), generator=gen) >= DROPOUT).to(torch.uint8)
                masks[name] = keep

        t: Dict[str, torch.Tensor] = {"forward.input_ids": ids.to(torch.int32), "train.input_ids": train_in.to(torch.int32),
                                      "train.targets": train_tg.to(torch.int32)}
        pm.eval()
        set_dropout(pm, None)
        with torch.no_grad():
            logits = pm.base_model(ids)
        t["forward.logits"] = f32(logits)
        t.update(loss_and_grads(pm, train_in, train_tg, "nodrop"))
        info = {"use_dora": use_dora, "use_rslora": use_rslora, "scaling": next(iter(mods.values())).scaling["default"]}
        pm.train()
        set_dropout(pm, masks)
        for name, keep in masks.items():
            t[f"drop.mask.{name}"] = keep.reshape(train_in.numel(), -1).contiguous()
        t.update(loss_and_grads(pm, train_in, train_tg, "drop"))
        if case != "lora-rslora":
            layer = f"transformer.layers.{CAPTURE_LAYER}."
            names = ["transformer.token_embeddings"] + [layer + m for m in ("attn.qkv_proj", "attn.out_proj",
                                                                             "ffn.proj_1", "ffn.proj_2")]
            t.update(capture_modules(pm, train_in, train_tg, names))
            pm.eval()
            set_dropout(pm, None)
            m, merge_info = merged_goldens(pm, cfg, base, ids, logits)
            t.update(m)
            info.update(merge_info)
            t["curve.input_ids"] = curve_in.to(torch.int32)
            t["curve.targets"] = curve_tg.to(torch.int32)
            c, norms = run_curve(pm, curve_in, curve_tg)
            t.update(c)
            info["curve_grad_norms"] = norms
        meta = {**versions, "format": "openelm-peft-golden", "case": case, "base": BASE,
                "info": json.dumps(info), "curve": json.dumps(CURVE), "lora_dropout": str(DROPOUT),
                "capture_layer": str(CAPTURE_LAYER)}
        save_safetensors(os.path.join(d, "golden.safetensors"), t, meta)
        manifest["cases"][case] = info
        print(f"{case}: {json.dumps(info)}")

    files = [f"{case}/{rel}" for case in CASES
             for rel in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "golden.safetensors")]
    total = write_manifest(out_root, manifest, [f for f in files if os.path.exists(os.path.join(out_root, f))])
    print(f"wrote {len(manifest['files'])} files, {total / 1e6:.2f} MB, to {out_root}")


if __name__ == "__main__":
    main()
