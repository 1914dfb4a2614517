"""Optional: compare the fixtures with Apple's own HF modeling code (modeling_openelm.py).

Apple's code is not vendored here. Point --apple-dir at a folder holding the hub's
modeling_openelm.py and configuration_openelm.py (the copy used so far: repo
datawhalechina/llms-from-scratch-cn, Model_Architecture_Discussions/openelm/, commit 6ca2631b3d61),
and run with a Python that has torch and transformers (checked with transformers 5.17.0; the hub
code targets 4.x, so two small API shims are applied below, without changing any model math).

    python tools/crosscheck_hf.py --apple-dir /path/to/openelm_hf_code

It also checks a checkpoint this project wrote (a training checkpoint, or `openelm convert --to hf`
output): Apple's code must load it with no missing or unexpected keys and give our logits.

    node tools/dump_logits.mjs DIR ours.json          # our engine's logits (after npm run build)
    python tools/crosscheck_hf.py --apple-dir /path/to/openelm_hf_code --check-dir DIR --ours ours.json

Checks per fixture: per-layer dims, logits (each row alone), greedy decoding through HF's own
DynamicCache, and parameter gradients of CE + z-loss. HF's model computes RMSNorm and RoPE in
float32 even when the weights are float64, so agreement is ~1e-6, not float64-exact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openelm_ref as ref  # noqa: E402


def load_apple(apple_dir: str):
    sys.path.insert(0, apple_dir)
    import configuration_openelm as C  # type: ignore
    from transformers import PretrainedConfig
    from transformers.cache_utils import DynamicCache

    # transformers 5 calls __post_init__(**kwargs) from PretrainedConfig.__init__, while Apple's
    # config calls its own no-argument __post_init__ first. Keep both behaviours.
    apple_post = C.OpenELMConfig.__post_init__

    def post_init(self, **kwargs):
        if not kwargs and not getattr(self, "_apple_post_done", False):
            self._apple_post_done = True
            return apple_post(self)
        return PretrainedConfig.__post_init__(self, **kwargs)

    C.OpenELMConfig.__post_init__ = post_init
    # Legacy-cache helpers removed in transformers 5: pass the DynamicCache object straight through.
    if not hasattr(DynamicCache, "from_legacy_cache"):
        DynamicCache.from_legacy_cache = classmethod(lambda cls, pkv=None: pkv if isinstance(pkv, DynamicCache) else cls())
    if not hasattr(DynamicCache, "to_legacy_cache"):
        DynamicCache.to_legacy_cache = lambda self: self
    import modeling_openelm as M  # type: ignore
    return C, M, DynamicCache


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def check(name: str, root: str, C, M, DynamicCache) -> bool:
    d = os.path.join(root, name)
    raw = json.load(open(os.path.join(d, "config.json")))
    weights = load_file(os.path.join(d, "model.safetensors"))
    golden = load_file(os.path.join(d, "golden.safetensors"))
    ours = ref.resolve_config(raw)

    hf_cfg = C.OpenELMConfig(**{k: v for k, v in raw.items() if k not in ("num_query_heads", "num_kv_heads")})
    hf_cfg._attn_implementation = "eager"
    model = M.OpenELMForCausalLM(hf_cfg).double().eval()
    hf_ffn = [layer.ffn.proj_2.in_features for layer in model.transformer.layers]
    ok = True
    dims_ok = (hf_cfg.num_query_heads == ours.num_query_heads and hf_cfg.num_kv_heads == ours.num_kv_heads
               and hf_ffn == ours.ffn_dims)
    print(f"{name}: HF dims Q={hf_cfg.num_query_heads} K={hf_cfg.num_kv_heads} F={hf_ffn} -> {'ok' if dims_ok else 'MISMATCH'}")
    ok &= dims_ok

    missing, unexpected = model.load_state_dict({k: v.double() for k, v in weights.items()}, strict=False)
    print(f"  load_state_dict: missing={missing} unexpected={unexpected}")
    ok &= not missing and not unexpected

    with torch.no_grad():
        worst = 0.0
        for b, n in enumerate(golden["lengths"].tolist()):
            ids = golden["input_ids"][b : b + 1, :n].long()
            logits = model(input_ids=ids, use_cache=False).logits[0]
            worst = max(worst, max_abs(logits, golden["logits"][b, :n]))
        print(f"  logits vs golden: max |diff| = {worst:.2e}")
        ok &= worst < 1e-4

        cache = DynamicCache()
        step = golden["greedy.prompt"].long()[None, :]
        gen = []
        for _ in range(golden["greedy.ids"].numel()):
            out = model(input_ids=step, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = int(out.logits[0, -1].argmax())
            gen.append(nxt)
            step = torch.tensor([[nxt]])
        same = gen == golden["greedy.ids"].tolist()
        print(f"  greedy with HF DynamicCache: {'same ids' if same else 'DIFFERENT: ' + str(gen)}")
        ok &= same

    model.zero_grad()
    logits = model(input_ids=golden["train.input_ids"].long(), use_cache=False).logits
    ce, loss = ref.lm_loss(logits, golden["train.targets"])
    loss.backward()
    ce, loss = ce.detach(), loss.detach()
    named = dict(model.named_parameters())
    worst_g = max(max_abs(named[k].grad, golden[f"grad.{k}"]) for k in weights)
    print(f"  ce {float(ce):.6f} vs {float(golden['train.ce']):.6f}; loss {float(loss):.6f} vs "
          f"{float(golden['train.loss']):.6f}; grads max |diff| = {worst_g:.2e}")
    ok &= abs(float(loss) - float(golden["train.loss"])) < 1e-5 and worst_g < 1e-5
    return ok


def check_dir(d: str, ours_file: str, C, M) -> bool:
    """Load a checkpoint folder we wrote with Apple's classes (strict) and compare logits with ours."""
    raw = json.load(open(os.path.join(d, "config.json")))
    weights = {}
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    for f in files:
        weights.update(load_file(os.path.join(d, f)))
    dtypes = sorted({str(v.dtype) for v in weights.values()})
    hf_cfg = C.OpenELMConfig(**{k: v for k, v in raw.items() if k not in ("num_query_heads", "num_kv_heads")})
    hf_cfg._attn_implementation = "eager"
    model = M.OpenELMForCausalLM(hf_cfg).float().eval()
    result = model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    ok = not result.missing_keys and not result.unexpected_keys
    ours = json.load(open(ours_file))
    ids = torch.tensor([ours["ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].double()
    mine = torch.tensor(ours["logits"], dtype=torch.float64).reshape(logits.shape)
    diff = float((logits - mine).abs().max())
    scale = float(logits.abs().max())
    same_top = bool((logits.argmax(-1) == mine.argmax(-1)).all())
    print(f"{d}: {dtypes}, strict load {'ok' if ok else 'FAILED'}; logits max |diff| {diff:.2e} (max |logit| {scale:.2f}); argmax {'same' if same_top else 'DIFFERENT'}")
    return ok and same_top and diff <= 1e-4 * max(1.0, scale)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apple-dir", required=True)
    ap.add_argument("--golden", default=os.path.join(HERE, "..", "test", "golden"))
    ap.add_argument("--check-dir", action="append", default=[], help="a checkpoint folder this project wrote")
    ap.add_argument("--ours", action="append", default=[], help="our logits for each --check-dir (tools/dump_logits.mjs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    C, M, DynamicCache = load_apple(os.path.abspath(args.apple_dir))
    if args.check_dir:
        if len(args.ours) != len(args.check_dir):
            sys.exit("give one --ours per --check-dir")
        results = [check_dir(d, o, C, M) for d, o in zip(args.check_dir, args.ours)]
        print("HF export check:", "PASS" if all(results) else "FAIL")
        sys.exit(0 if all(results) else 1)
    root = os.path.normpath(args.golden)
    names = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "golden.safetensors")))
    results = [check(n, root, C, M, DynamicCache) for n in names]
    print("HF cross-check:", "PASS" if all(results) else "FAIL")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
