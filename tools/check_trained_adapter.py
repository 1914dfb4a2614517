"""Check that an adapter trained by `openelm train` (a checkpoint folder of a run with a peft block)
is a PEFT adapter: `PeftModel.from_pretrained` loads it onto the base (tools/openelm_module.py, the
module tree with Apple's names, float64) and gives the logits openelm computes with it.

openelm's side is a safetensors file with `input_ids` [T] (I32) and `logits` [T, V] (F32): the
logits of `loadModel(base, { adapter, dtype: 'f32' })` on those ids (see tools/README.md for the
one-line command that writes it).

    python tools/check_trained_adapter.py --base runs/quickstart/step-00000400 \\
        --adapter runs/quickstart-lora/step-00000300 --ours ours.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import peft
import torch
from peft import PeftModel
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_peft_goldens as mp  # noqa: E402
import openelm_module as om  # noqa: E402
import openelm_ref as ref  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the base model folder (config.json + model.safetensors)")
    ap.add_argument("--adapter", required=True, help="the checkpoint folder of the adapter run")
    ap.add_argument("--ours", required=True, help="safetensors with input_ids and openelm's logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    raw = json.load(open(os.path.join(args.base, "config.json")))
    cfg = ref.resolve_config(raw)
    weights = load_file(os.path.join(args.base, "model.safetensors"))
    model = om.build(cfg, weights)
    pm = PeftModel.from_pretrained(model, args.adapter).double()
    pm.eval()
    wrapped = len(mp.lora_modules(pm))
    ours = load_file(args.ours)
    with torch.no_grad():
        logits = pm.base_model(ours["input_ids"].long().reshape(1, -1))[0]
    err = float((logits - ours["logits"].double()).abs().max())
    scale = float(ours["logits"].abs().max())
    ok = err < args.tol
    print(f"PEFT {peft.__version__} loaded {args.adapter}: {wrapped} modules wrapped; "
          f"logits vs openelm's: max |diff| = {err:.2e} (max |logit| {scale:.1f}) -> {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
