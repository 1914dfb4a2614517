"""Check test/golden/peft/ and measure how far a float32 run lands from it (Python only).

For every case it loads the committed adapter folder with PEFT (PeftModel.from_pretrained on the
module tree of openelm_module.py), recomputes the adapted logits, the loss and adapter gradients
without dropout and (where present) the 5-step curve in float64, which must reproduce the stored
float32 values, then repeats them in float32 and prints the largest deviations: use those to pick
the tolerances of the TypeScript tests. Also checks the MANIFEST hashes.

Usage: .venv/bin/python tools/check_peft_goldens.py [--golden test/golden]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_peft_goldens as mp  # noqa: E402
import openelm_module as om  # noqa: E402
import openelm_ref as ref  # noqa: E402

FAILURES = []


def expect(ok: bool, what: str) -> None:
    if not ok:
        FAILURES.append(what)
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def run(case: str, root: str, dtype: torch.dtype) -> dict:
    raw = json.load(open(os.path.join(root, mp.BASE, "config.json")))
    cfg = ref.resolve_config(raw)
    weights = load_file(os.path.join(root, mp.BASE, "model.safetensors"))
    golden = load_file(os.path.join(root, "peft", case, "golden.safetensors"))
    pm = PeftModel.from_pretrained(om.build(cfg, weights), os.path.join(root, "peft", case, "adapter"),
                                   is_trainable=True).to(dtype)
    pm.eval()
    mp.set_dropout(pm, None)
    out = {}
    with torch.no_grad():
        out["logits"] = diff(pm.base_model(golden["forward.input_ids"].long()), golden["forward.logits"])
    params = mp.adapter_params(pm)
    pm.zero_grad(set_to_none=True)
    _, loss = ref.lm_loss(pm.base_model(golden["train.input_ids"].long()), golden["train.targets"].long())
    loss.backward()
    out["loss"] = abs(float(loss.detach()) - float(golden["nodrop.loss"]))
    out["grads"] = max(diff(p.grad, golden[f"nodrop.grad.{k}"]) for k, p in params.items())
    out["grads_rel"] = max(diff(p.grad, golden[f"nodrop.grad.{k}"]) / float(golden[f"nodrop.grad.{k}"].abs().max())
                           for k, p in params.items())
    if "curve.loss" in golden:
        c, _ = mp.run_curve(pm, golden["curve.input_ids"].long(), golden["curve.targets"].long())
        out["curve.loss"] = diff(c["curve.loss"], golden["curve.loss"])
        out["curve.grad_norm_rel"] = float(((c["curve.grad_norm"].double() - golden["curve.grad_norm"].double()).abs()
                                            / golden["curve.grad_norm"].double()).max())
        out["curve.final"] = max(diff(c[k], golden[k]) for k in c if k.startswith("curve.final."))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "test", "golden"))
    args = ap.parse_args()
    root = os.path.normpath(args.golden)
    torch.set_num_threads(1)
    manifest = json.load(open(os.path.join(root, "peft", "MANIFEST.json")))
    for rel, info in manifest["files"].items():
        expect(mp.sha256(os.path.join(root, "peft", rel)) == info["sha256"], f"sha256 of {rel}")
    worst: dict = {}
    for case in mp.CASES:
        print(case)
        exact = run(case, root, torch.float64)
        # float64 recomputation vs float32-stored goldens: only the storage rounding may differ.
        expect(all(v < 1e-5 for v in exact.values() if not isinstance(v, str)), f"float64 rerun reproduces the goldens {exact}")
        for k, v in run(case, root, torch.float32).items():
            worst[k] = max(worst.get(k, 0.0), v)
    print("float32 vs golden, worst over the cases:")
    for k, v in worst.items():
        print(f"  {k}: {v:.2e}")
    print("all PEFT golden checks passed" if not FAILURES else f"FAILED: {FAILURES}")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
