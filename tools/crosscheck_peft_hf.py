"""Optional: load the PEFT fixtures (test/golden/peft/) onto Apple's own HF modeling code.

make_peft_goldens.py wraps tools/openelm_module.py, a module tree with Apple's module names. This
script checks that claim where it matters: `PeftModel.from_pretrained` on Apple's
OpenELMForCausalLM (same --apple-dir and shims as crosscheck_hf.py) must wrap the same modules,
load every tensor of the committed adapter folders, and reproduce the adapted logits, the loss and
every adapter gradient (no dropout). Apple's code computes RMSNorm and RoPE in float32, so agreement
is ~1e-6, not float64-exact.

    python tools/crosscheck_peft_hf.py --apple-dir /path/to/openelm_hf_code
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
import crosscheck_hf as xc  # noqa: E402
import make_peft_goldens as mp  # noqa: E402
import openelm_module as om  # noqa: E402
import openelm_ref as ref  # noqa: E402


def check(case: str, root: str, C, M) -> bool:
    d = os.path.join(root, "peft", case)
    raw = json.load(open(os.path.join(root, mp.BASE, "config.json")))
    weights = load_file(os.path.join(root, mp.BASE, "model.safetensors"))
    golden = load_file(os.path.join(d, "golden.safetensors"))
    hf_cfg = C.OpenELMConfig(**{k: v for k, v in raw.items() if k not in ("num_query_heads", "num_kv_heads")})
    hf_cfg._attn_implementation = "eager"
    model = M.OpenELMForCausalLM(hf_cfg).double()
    model.load_state_dict({k: v.double() for k, v in weights.items()}, strict=True)
    pm = PeftModel.from_pretrained(model, os.path.join(d, "adapter"), is_trainable=True).double()
    pm.eval()

    theirs = set(mp.lora_modules(pm))
    mine = {n for n, _ in om.build(ref.resolve_config(raw), weights).named_modules() if n.split(".")[-1] in mp.TARGETS}
    same_modules = theirs == mine
    print(f"{case}: PEFT wrapped {len(theirs)} modules on Apple's model; same set as ours: {same_modules}")
    ok = same_modules

    with torch.no_grad():
        logits = pm(input_ids=golden["forward.input_ids"].long(), use_cache=False).logits
    err = float((logits - golden["forward.logits"].double()).abs().max())
    print(f"  adapted logits vs golden: max |diff| = {err:.2e}")
    ok &= err < 1e-4

    mp.set_dropout(pm, None)
    pm.zero_grad(set_to_none=True)
    out = pm(input_ids=golden["train.input_ids"].long(), use_cache=False).logits
    _, loss = ref.lm_loss(out, golden["train.targets"])
    loss.backward()
    loss = loss.detach()
    params = mp.adapter_params(pm)
    worst = max(float((p.grad - golden[f"nodrop.grad.{k}"].double()).abs().max()) for k, p in params.items())
    lerr = abs(float(loss) - float(golden["nodrop.loss"]))
    print(f"  loss |diff| = {lerr:.2e}; {len(params)} adapter grads, max |diff| = {worst:.2e}")
    ok &= lerr < 1e-5 and worst < 1e-5
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apple-dir", required=True)
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "test", "golden"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    C, M, _ = xc.load_apple(os.path.abspath(args.apple_dir))
    root = os.path.normpath(args.golden)
    results = [check(c, root, C, M) for c in mp.CASES]
    print("PEFT on Apple's HF code:", "PASS" if all(results) else "FAIL")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
