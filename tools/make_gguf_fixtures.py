"""Write the GGUF import fixtures under test/fixtures/gguf/ with llama.cpp's own tools.

Files are made the way users make them: llama.cpp's `convert_hf_to_gguf.py` turns an HF folder
into an F32/F16/BF16 GGUF, and `llama-quantize` turns the F32 one into the quantized types. The
expected values come from gguf-py (`gguf.quants.dequantize`, llama.cpp's Python reference): for
every tensor the manifest stores the sha256 of its dequantized float32 bytes, so the TypeScript
decoder is checked bit for bit without committing the decoded floats.

Models:
  gqa2-hd64  the golden model of test/golden (3 layers, model_dim 64): every row is a multiple of
             32, so the 32-value block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) cover every tensor;
             F16 / BF16 come from the converter itself (F32: the norms of every file).
  k256       a random 2-layer model with model_dim 256 (rows of 128 and 256 values), for the
             256-value K-quants; the 128-wide tensors take llama-quantize's fallback types, as in
             real files.
  vocab      the Llama-2 vocabulary alone (`--vocab-only`), for the GGUF tokenizer tests.

Both models have vocab_size 384: the converter keeps the first 384 Llama-2 pieces.

Usage (needs a llama.cpp checkout with llama-quantize built, and torch, numpy, sentencepiece,
safetensors from tools/requirements.txt):
  PYTHONPATH=LLAMA_CPP/gguf-py .venv/bin/python tools/make_gguf_fixtures.py --llama-cpp LLAMA_CPP [--only FILE ...]

--only remakes just the named files and keeps the other entries of the existing MANIFEST.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openelm_ref as ref  # noqa: E402
from fixture_files import sha256, write_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
TOKENIZER = os.path.join(ROOT, "assets", "tokenizer", "tokenizer.model")
GOLDEN = os.path.join(ROOT, "test", "golden", "gqa2-hd64")

K256 = dict(
    architectures=["OpenELMForCausalLM"], model_type="openelm", activation_fn_name="swish",
    bos_token_id=1, eos_token_id=2, ffn_dim_divisor=128, ffn_multipliers=[0.5, 1.0], ffn_with_glu=True,
    head_dim=64, initializer_range=0.02, max_context_length=64, model_dim=256,
    normalization_layer_name="rms_norm", normalize_qk_projections=True, num_gqa_groups=2,
    num_transformer_layers=2, qkv_multipliers=[0.5, 1.0], rope_freq_constant=10000, rope_max_length=4096,
    share_input_output_layers=True, torch_dtype="float32", use_cache=True, vocab_size=384,
)
K256_SEED = 17

# (file, model, how): "convert:<outtype>" runs the converter, "quantize:<type>[:pure][:tensor-type=T=TYPE]"
# llama-quantize on that model's F32 file. --pure stops llama-quantize from giving the embedding (the
# tied head) Q6_K, so every 2-D tensor gets the named type; --tensor-type overrides one tensor kind.
FILES = [
    ("gqa2-hd64-f16.gguf", "gqa2-hd64", "convert:f16"),
    ("gqa2-hd64-bf16.gguf", "gqa2-hd64", "convert:bf16"),
    ("gqa2-hd64-q8_0.gguf", "gqa2-hd64", "quantize:Q8_0:pure"),
    ("gqa2-hd64-q4_0.gguf", "gqa2-hd64", "quantize:Q4_0:pure"),
    ("gqa2-hd64-q4_1.gguf", "gqa2-hd64", "quantize:Q4_1:pure"),
    ("gqa2-hd64-q5_0.gguf", "gqa2-hd64", "quantize:Q5_0:pure"),
    ("gqa2-hd64-q5_1.gguf", "gqa2-hd64", "quantize:Q5_1:pure"),
    ("k256-q4_k_m.gguf", "k256", "quantize:Q4_K_M"),
    ("k256-q5_k_m.gguf", "k256", "quantize:Q5_K_M"),
    ("k256-q6_k.gguf", "k256", "quantize:Q6_K:pure"),
    # ffn_up in Q8_0 beside a Q4_K ffn_gate: a proj_1 whose two halves have different types
    ("k256-q4_k_m-mixed.gguf", "k256", "quantize:Q4_K_M:tensor-type=ffn_up=q8_0"),
]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def run(cmd: list[str], env: dict | None = None) -> str:
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return r.stdout


def make_k256(dst: str) -> None:
    cfg = ref.resolve_config(K256)
    gen = torch.Generator().manual_seed(K256_SEED)
    params = {k: v.to(torch.float32).contiguous() for k, v in ref.init_params(cfg, gen).items()}
    save_file(params, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    hf = dict(K256, num_query_heads=cfg.num_query_heads, num_kv_heads=cfg.num_kv_heads)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(hf, f, indent=2, sort_keys=True)


def model_dir(name: str, tmp: str) -> str:
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    if name == "gqa2-hd64":
        for f in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(GOLDEN, f), d)
    elif name == "k256":
        make_k256(d)
    shutil.copy(TOKENIZER, d)
    return d


def describe(path: str) -> dict:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(path)
    tensors = []
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type).astype("<f4", copy=False)
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "dims": [int(x) for x in t.shape],
            "sha256_f32": sha256_bytes(np.ascontiguousarray(values).tobytes()),
            "first": [float(x) for x in values.reshape(-1)[:4]],
        })
    return {"bytes": os.path.getsize(path), "sha256": sha256(path), "tensors": tensors}


def make_vocab(vdir: str, dirs: dict, converter: str, env: dict, out_dir: str, manifest: dict) -> None:
    os.makedirs(vdir)
    shutil.copy(TOKENIZER, vdir)
    with open(os.path.join(dirs["gqa2-hd64"], "config.json")) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = 32000
    with open(os.path.join(vdir, "config.json"), "w") as f:
        json.dump(cfg, f)
    vocab = os.path.join(out_dir, "llama-spm-vocab.gguf")
    run([sys.executable, converter, vdir, "--vocab-only", "--outfile", vocab], env)
    manifest["files"]["llama-spm-vocab.gguf"] = {"model": "vocab", "made_with": "convert:vocab-only", **describe(vocab)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp checkout with build/bin/llama-quantize")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "gguf"))
    ap.add_argument("--only", nargs="+", help="make only these files (the manifest keeps the others' entries)")
    args = ap.parse_args()
    only = set(args.only or [])
    unknown = only - {f for f, _, _ in FILES} - {"llama-spm-vocab.gguf"}
    if unknown:
        raise SystemExit(f"--only: unknown files {sorted(unknown)}")
    lc = os.path.abspath(args.llama_cpp)
    converter = os.path.join(lc, "convert_hf_to_gguf.py")
    quantize = os.path.join(lc, "build", "bin", "llama-quantize")
    env = dict(os.environ, PYTHONPATH=os.path.join(lc, "gguf-py"))
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    manifest: dict = {"generator": "tools/make_gguf_fixtures.py", "files": {}}
    mpath = os.path.join(args.out, "MANIFEST.json")
    if only:
        with open(mpath) as f:
            manifest = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {m: model_dir(m, tmp) for m in ("gqa2-hd64", "k256")}
        f32 = {}
        for m, d in dirs.items():
            f32[m] = os.path.join(tmp, f"{m}-f32.gguf")
            run([sys.executable, converter, d, "--outtype", "f32", "--outfile", f32[m]], env)
        for name, m, how in FILES:
            if only and name not in only:
                continue
            out = os.path.join(args.out, name)
            kind, *rest = how.split(":")
            if kind == "convert":
                if rest[0] == "f32":
                    shutil.copy(f32[m], out)
                else:
                    run([sys.executable, converter, dirs[m], "--outtype", rest[0], "--outfile", out], env)
            else:
                cmd = [quantize] + (["--pure"] if "pure" in rest else [])
                for r in rest:
                    if r.startswith("tensor-type="):
                        cmd += ["--tensor-type", r[len("tensor-type="):]]
                cmd += [f32[m], out, rest[0]]
                log = run(cmd)
                manifest["llama_quantize"] = next((l.strip() for l in log.splitlines() if l.startswith("version:")), "unknown")
            manifest["files"][name] = {"model": m, "made_with": how, **describe(out)}
        # The Llama-2 vocabulary alone, from a folder whose config has the full vocab size.
        if not only or "llama-spm-vocab.gguf" in only:
            make_vocab(os.path.join(tmp, "vocab"), dirs, converter, env, args.out, manifest)
        shutil.copy(os.path.join(dirs["k256"], "config.json"), os.path.join(args.out, "k256-config.json"))

    from importlib.metadata import version
    try:
        manifest["gguf_py_version"] = version("gguf")
    except Exception:
        manifest["gguf_py_version"] = "unknown"
    manifest["numpy_version"] = np.__version__
    write_json(mpath, manifest, indent=1)
    total = sum(v["bytes"] for v in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} files, {total / 1e6:.2f} MB, to {args.out}")


if __name__ == "__main__":
    main()
