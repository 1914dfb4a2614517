"""Self-consistency check of test/golden/ against tools/openelm_ref.py (Python only; CI never runs it).

For every fixture it reloads config.json and model.safetensors, recomputes every golden tensor in
float64 and compares; it also checks batched-vs-single and cached-vs-uncached forward passes, the
MANIFEST hashes, and finally reruns everything in float32 to report how far an honest float32
implementation lands from the stored goldens (use these numbers to pick TS test tolerances).

Usage: .venv/bin/python tools/check_goldens.py [--golden test/golden] [--skip-float32]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Dict

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402
import openelm_ref as ref  # noqa: E402

FAILURES = []


def expect(ok: bool, what: str) -> None:
    if not ok:
        FAILURES.append(what)
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a-b| / max(1, max |b|): float32 storage rounding is ~6e-8 of this scale."""
    return diff(a, b) / max(1.0, float(b.double().abs().max()))


def row_logits(params, cfg, ids, lengths) -> torch.Tensor:
    out = torch.zeros(ids.shape[0], ids.shape[1], cfg.vocab_size, dtype=next(iter(params.values())).dtype)
    for b, n in enumerate(lengths):
        out[b, :n] = ref.forward(params, cfg, ids[b : b + 1, :n])[0]
    return out


def check_fixture(root: str, name: str, manifest: dict, float32: bool) -> Dict[str, float]:
    print(f"{name}")
    d = os.path.join(root, name)
    raw = json.load(open(os.path.join(d, "config.json")))
    cfg = ref.resolve_config(raw)
    print(f"  per layer: Q={cfg.num_query_heads} K={cfg.num_kv_heads} F={cfg.ffn_dims}")
    expect(raw["num_query_heads"] == cfg.num_query_heads and raw["num_kv_heads"] == cfg.num_kv_heads,
           "config.json head lists equal the recomputed ones")

    weights = load_file(os.path.join(d, "model.safetensors"))
    shapes = ref.param_shapes(cfg)
    expect(set(weights) == set(shapes) and all(tuple(weights[k].shape) == s for k, s in shapes.items()),
           "model.safetensors has exactly the HF keys and shapes (no lm_head)")
    expect(all(w.dtype == torch.float32 for w in weights.values()), "weights are float32")

    with safe_open(os.path.join(d, "golden.safetensors"), "pt") as f:
        meta = f.metadata()
    g = load_file(os.path.join(d, "golden.safetensors"))
    expect(json.loads(meta["config"]) == raw, "golden metadata config equals config.json")

    p64 = {k: v.double() for k, v in weights.items()}
    lengths = g["lengths"].tolist()
    ids = g["input_ids"].long()
    torch.set_grad_enabled(False)

    logits = row_logits(p64, cfg, ids, lengths)
    expect(rel_diff(logits, g["logits"]) < 1e-6, f"logits recomputed (rel {rel_diff(logits, g['logits']):.1e})")
    pad_zero = all(bool((g["logits"][b, n:] == 0).all()) for b, n in enumerate(lengths))
    expect(pad_zero, "logits past each row's length are zero")

    # Right-padded batch in one call: causal masking alone keeps padding out of valid positions.
    batched = ref.forward(p64, cfg, ids)
    worst = max(diff(batched[b, :n], logits[b, :n]) for b, n in enumerate(lengths))
    expect(worst < 1e-10, f"batched (right-padded) == each row alone ({worst:.1e})")

    # KV cache: uneven chunks, including single tokens, must reproduce the uncached pass.
    cache = ref.KVCache(cfg.num_transformer_layers)
    chunks, pos = [], 0
    for size in [4, 1, 1, 3, 3]:
        chunks.append(ref.forward(p64, cfg, ids[:, pos : pos + size], cache=cache))
        pos += size
    cached = torch.cat(chunks, dim=1)
    worst = max(diff(cached[b, :n], logits[b, :n]) for b, n in enumerate(lengths))
    expect(worst < 1e-10, f"cached in chunks [4,1,1,3,3] == uncached ({worst:.1e})")

    cap: dict = {}
    n0 = lengths[mg.ACT_ROW]
    ref.forward(p64, cfg, ids[mg.ACT_ROW : mg.ACT_ROW + 1, :n0], capture=cap, capture_layer=mg.ACT_LAYER)
    worst = max(rel_diff(cap[k][0], g[f"act.{k}"]) for k in cap)
    expect(worst < 1e-6, f"{len(cap)} activations recomputed (rel {worst:.1e})")

    prompt = g["greedy.prompt"].tolist()
    with_cache, gaps = ref.greedy(p64, cfg, prompt, mg.GREEDY_NEW, use_cache=True)
    no_cache, _ = ref.greedy(p64, cfg, prompt, mg.GREEDY_NEW, use_cache=False)
    expect(with_cache == g["greedy.ids"].tolist() == no_cache == g["greedy.ids_nocache"].tolist(),
           f"greedy ids (cache and no cache), min top-2 gap {min(gaps):.2e}")

    torch.set_grad_enabled(True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in p64.items()}
    ce, loss = ref.lm_loss(ref.forward(leaves, cfg, g["train.input_ids"]), g["train.targets"])
    loss.backward()
    expect(rel_diff(ce.detach(), g["train.ce"]) < 1e-6 and rel_diff(loss.detach(), g["train.loss"]) < 1e-6,
           f"train ce {float(ce.detach()):.6f} and loss {float(loss.detach()):.6f}")
    worst = max(rel_diff(p.grad, g[f"grad.{k}"]) for k, p in leaves.items())
    expect(worst < 1e-6, f"grads of all {len(leaves)} parameters (rel {worst:.1e})")
    lrs = [ref.corenet_lr(t, mg.OPTIM["max_lr"], mg.OPTIM["min_lr"], mg.OPTIM["warmup_init_lr"],
                          mg.OPTIM["warmup_steps"], mg.OPTIM["max_steps"]) for t in range(mg.OPTIM["steps"])]
    expect(rel_diff(torch.tensor(lrs), g["curve.lr"]) < 1e-6, "curve.lr follows the CoreNet formula")
    losses, norms, _, final = mg.run_curve(p64, cfg, g["curve.input_ids"], g["curve.targets"])
    expect(rel_diff(torch.tensor(losses), g["curve.loss"]) < 1e-6, "curve.loss recomputed")
    expect(rel_diff(torch.tensor(norms), g["curve.grad_norm"]) < 1e-6, "curve.grad_norm recomputed")
    worst = max(rel_diff(v, g[f"curve.final.{k}"]) for k, v in final.items())
    expect(worst < 1e-6, f"curve.final for all parameters (rel {worst:.1e})")

    for fname in ["config.json", "model.safetensors", "golden.safetensors"]:
        entry = manifest["files"].get(f"{name}/{fname}", {})
        h = hashlib.sha256(open(os.path.join(d, fname), "rb").read()).hexdigest()
        expect(entry.get("sha256") == h, f"MANIFEST sha256 of {fname}")

    if not float32:
        return {}
    # How far does a float32 implementation of the same math land? (guidance for TS tolerances)
    p32 = {k: v.clone() for k, v in weights.items()}
    with torch.no_grad():
        l32 = row_logits(p32, cfg, ids, lengths)
        cap32: dict = {}
        ref.forward(p32, cfg, ids[:1, :n0], capture=cap32, capture_layer=mg.ACT_LAYER)
        greedy32, _ = ref.greedy(p32, cfg, prompt, mg.GREEDY_NEW)
    leaves = {k: v.clone().requires_grad_(True) for k, v in p32.items()}
    _, loss32 = ref.lm_loss(ref.forward(leaves, cfg, g["train.input_ids"]), g["train.targets"])
    loss32.backward()
    c_losses, c_norms, _, c_final = mg.run_curve(p32, cfg, g["curve.input_ids"], g["curve.targets"], dtype=torch.float32)
    final_abs = max(diff(v, g[f"curve.final.{k}"]) for k, v in c_final.items())
    stats = {
        "logits_abs": diff(l32, g["logits"]),
        "acts_rel": max(rel_diff(cap32[k][0], g[f"act.{k}"]) for k in cap32),
        "train_loss_abs": diff(loss32.detach(), g["train.loss"]),
        "grads_abs": max(diff(p.grad, g[f"grad.{k}"]) for k, p in leaves.items()),
        "grads_rel_to_tensor_max": max(diff(p.grad, g[f"grad.{k}"]) / float(g[f"grad.{k}"].abs().max())
                                       for k, p in leaves.items()),
        "curve_loss_abs": diff(torch.tensor(c_losses), g["curve.loss"]),
        "curve_grad_norm_rel": diff(torch.tensor(c_norms), g["curve.grad_norm"]) / float(g["curve.grad_norm"].max()),
        "curve_final_abs": final_abs,
        "greedy_same": float(greedy32 == g["greedy.ids"].tolist()),
    }
    print("  float32 run vs goldens: " + ", ".join(f"{k}={v:.1e}" for k, v in stats.items()))
    expect(stats["greedy_same"] == 1.0, "float32 greedy reproduces greedy.ids")
    return stats


def check_released_sizes() -> None:
    """The resolver must reproduce the per-layer tables of the released models (spec 2.2)."""
    print("released configs")
    base = dict(vocab_size=32000, max_context_length=2048, num_gqa_groups=4, qkv_multipliers=[0.5, 1.0],
                ffn_multipliers=[0.5, 4.0], ffn_dim_divisor=256)
    cfg = ref.resolve_config({**base, "num_transformer_layers": 16, "model_dim": 1280, "head_dim": 64})
    expect(cfg.num_query_heads == [12] * 5 + [16] * 7 + [20] * 4
           and cfg.ffn_dims == [768, 1024, 1280, 1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 3840, 4352, 4608,
                                4864, 5120], "270M per-layer Q and F")
    cfg = ref.resolve_config({**base, "num_transformer_layers": 28, "model_dim": 2048, "head_dim": 64})
    expect(cfg.num_query_heads == [16] * 3 + [20] * 7 + [24] * 8 + [28] * 6 + [32] * 4
           and cfg.num_kv_heads == [q // 4 for q in cfg.num_query_heads]
           and cfg.ffn_dims[12:15] == [4096, 4608, 4608] and cfg.ffn_dims[-1] == 8192, "1_1B per-layer Q, K and F")
    cfg = ref.resolve_config({**base, "num_transformer_layers": 36, "model_dim": 3072, "head_dim": 128})
    expect(cfg.num_query_heads == [12] * 4 + [16] * 14 + [20] * 12 + [24] * 6 and cfg.ffn_dims[0] == 1536
           and cfg.ffn_dims[-1] == 12288, "3B per-layer Q and F")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "test", "golden"))
    ap.add_argument("--skip-float32", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = os.path.normpath(args.golden)
    manifest = json.load(open(os.path.join(root, "MANIFEST.json")))
    check_released_sizes()
    for name in sorted(manifest["configs"]):
        check_fixture(root, name, manifest, not args.skip_float32)
    print(f"{'FAILED: ' + '; '.join(FAILURES) if FAILURES else 'all golden checks passed'}")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
