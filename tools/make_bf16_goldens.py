"""Mixed-precision (bf16) training goldens: test/golden/<name>/bf16.safetensors.

For each golden model, the loss, CE and every parameter gradient of the golden training batch
(train.input_ids / train.targets of golden.safetensors) when every product with a parameter (the
qkv, out, proj_1, proj_2 projections and the tied head) takes bf16-rounded inputs, as
`precision: bf16` computes them (docs/training.md):

  forward   y  = r(x) @ r(W).T
  backward  dx = r(dy) @ r(W),   dW = r(dy).T @ r(x)

with r() = round to bfloat16 (nearest even). Everything else (norms, RoPE, attention and its
softmax, SiLU, the loss) and every sum is float64, so the fixture measures only the rounding of the
product inputs; our f32 sums are what the test's tolerance covers.

Usage: .venv/bin/python tools/make_bf16_goldens.py [--golden test/golden]
(run after tools/make_goldens.py; reads config.json, model.safetensors and golden.safetensors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openelm_ref as ref  # noqa: E402
from make_goldens import f32  # noqa: E402
from fixture_files import save_safetensors  # noqa: E402

GENERATOR = "tools/make_bf16_goldens.py"
GENERATOR_VERSION = "1"


def r(t: torch.Tensor) -> torch.Tensor:
    """Round to bfloat16 (through float32, as our float32 tensors are), back to the input dtype."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class Bf16Linear(torch.autograd.Function):
    """x @ w.T with both inputs rounded to bf16, and the two backward products likewise."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return r(x) @ r(w).T

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = r(dy) @ r(w)
        dw = r(dy).reshape(-1, dy.shape[-1]).T @ r(x).reshape(-1, x.shape[-1])
        return dx, dw


def bf16_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return Bf16Linear.apply(x, w)


def loss_and_grads(params, cfg, inputs, targets):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ce, loss = ref.lm_loss(ref.forward(leaves, cfg, inputs), targets)
    loss.backward()
    return ce, loss, {k: p.grad for k, p in leaves.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(os.path.dirname(__file__), "..", "test", "golden"))
    args = ap.parse_args()
    root = os.path.normpath(args.golden)
    torch.set_num_threads(1)
    names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "golden.safetensors")))
    plain = ref.linear
    for name in names:
        d = os.path.join(root, name)
        with open(os.path.join(d, "config.json")) as f:
            raw = json.load(f)
        cfg = ref.resolve_config(raw)
        params = {k: v.to(torch.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
        g = load_file(os.path.join(d, "golden.safetensors"))
        inputs, targets = g["train.input_ids"].long(), g["train.targets"].long()

        ref.linear = plain
        ce32, loss32, grads32 = loss_and_grads(params, cfg, inputs, targets)
        loss32 = loss32.detach()
        ref.linear = bf16_linear
        ce, loss, grads = loss_and_grads(params, cfg, inputs, targets)
        ref.linear = plain
        ce, loss = ce.detach(), loss.detach()

        out = {"bf16.train.ce": f32(ce), "bf16.train.loss": f32(loss)}
        for k, v in grads.items():
            out[f"bf16.grad.{k}"] = f32(v)
        # How far bf16 inputs move the results (a test tolerance must be well inside this, or it
        # could not tell a bf16 run from an fp32 one).
        effect = max(float(((grads[k] - grads32[k]).abs().max() / grads32[k].abs().max())) for k in grads)
        meta = {
            "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "torch_version": torch.__version__,
            "name": name, "rounding": "inputs of every product with a parameter (forward, both backward products) rounded to bfloat16, nearest even; all else float64",
            "loss_shift_vs_fp32": f"{float(loss - loss32):.3e}", "max_grad_shift_vs_fp32_rel_to_max": f"{effect:.3e}",
        }
        save_safetensors(os.path.join(d, "bf16.safetensors"), out, meta)
        print(f"{name}: loss {float(loss):.6f} (fp32 {float(loss32):.6f}, shift {float(loss - loss32):.2e}); "
              f"largest grad shift / max |grad| {effect:.2e}")


if __name__ == "__main__":
    main()
