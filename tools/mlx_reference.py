"""A NumPy reimplementation of MLX's affine quantization and of the MLX folder layouts, used to
cross-check `openelm convert --to mlx` and the MLX reader (MLX itself only runs on Apple silicon
and is not installable on the machines that make the fixtures).

Sources read (ml-explore/mlx, ml-explore/mlx-lm, apple/corenet):
- mlx/backend/cpu/quantized.cpp `quantize`: per group of `group_size` values, in float32,
    scale = max((max - min) / (2^bits - 1), 1e-7), negated unless |min| > |max|;
    edge = the end with the larger magnitude; q0 = rint(edge / scale);
    if q0 != 0: scale = edge / q0, bias = edge; else bias = 0;
    q = clip(rint((w - bias) / scale), 0, 2^bits - 1); scale and bias cast to the weight dtype;
  codes are packed LSB first, 32 / bits per uint32 word.
  (The Metal kernel rounds halves away from zero and starts its max at 0; the two agree except
  on exact halves and on groups with no positive value.)
- mlx_lm/utils.py quantize_model / save_model / save_config: Linear and Embedding layers whose input
  width is a multiple of the group size are quantized; weights in model.safetensors with metadata
  {"format": "mlx"}; config.json gains "quantization" (and a copy as "quantization_config").
- mlx_lm/models/openelm.py ModelArgs: needs per-layer num_query_heads, num_kv_heads, ffn_multipliers.
- corenet/mlx_examples/open_elm/convert.py: weights.safetensors with CoreNet names (no
  "transformer." prefix, the YAML's vocab_size rows), config.json = the YAML's general_gpt block
  without padding_index (+ "quantization"); only Linear layers are quantized.

Usage:
  .venv/bin/python tools/mlx_reference.py [--out test/fixtures/mlx]
writes MANIFEST.json (sha256 of every tensor of the mlx-lm folders this reference makes from
test/golden/gqa2-hd64, and of their dequantized values) and a CoreNet-layout folder for gpt-test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openelm_ref as ref  # noqa: E402
from fixture_files import write_json  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
F32 = np.float32


def to_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round float32 values to the storage dtype and back (bf16 round-to-nearest-even via torch)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=F32))
    if dtype == "bfloat16":
        return t.to(torch.bfloat16).to(torch.float32).numpy()
    if dtype == "float16":
        return t.to(torch.float16).to(torch.float32).numpy()
    return t.numpy()


def quantize(w: np.ndarray, group_size: int, bits: int, dtype: str):
    """mlx.core.quantize (CPU) of a [rows, cols] float32 array whose values are already in `dtype`."""
    rows, cols = w.shape
    n_bins = F32((1 << bits) - 1)
    eps = F32(1e-7)
    g = w.reshape(rows, cols // group_size, group_size).astype(F32)
    w_max = g.max(axis=-1)
    w_min = g.min(axis=-1)
    mask = np.abs(w_min) > np.abs(w_max)
    scale = np.maximum((w_max - w_min) / n_bins, eps).astype(F32)
    scale = np.where(mask, scale, -scale).astype(F32)
    edge = np.where(mask, w_min, w_max).astype(F32)
    q0 = np.rint(edge / scale).astype(F32)
    nz = q0 != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(nz, edge / np.where(nz, q0, F32(1)), scale).astype(F32)
    bias = np.where(nz, edge, F32(0)).astype(F32)
    q = np.rint((g - bias[..., None]) / scale[..., None]).astype(F32)
    q = np.clip(q, 0, n_bins).astype(np.uint32).reshape(rows, cols)
    per = 32 // bits
    q = q.reshape(rows, cols // per, per)
    words = np.zeros((rows, cols // per), dtype=np.uint32)
    for k in range(per):
        words |= q[:, :, k] << np.uint32(k * bits)
    return words, to_dtype(scale, dtype), to_dtype(bias, dtype)


def dequantize(words: np.ndarray, scales: np.ndarray, biases: np.ndarray, group_size: int, bits: int) -> np.ndarray:
    """scale * q + bias in float32 (what MLX's quantized matmuls compute with)."""
    rows = words.shape[0]
    per = 32 // bits
    q = np.stack([(words >> np.uint32(k * bits)) & np.uint32((1 << bits) - 1) for k in range(per)], axis=-1)
    q = q.reshape(rows, -1).astype(F32)
    s = np.repeat(scales.astype(F32), group_size, axis=1)
    b = np.repeat(biases.astype(F32), group_size, axis=1)
    return (s * q).astype(F32) + b


def np_dtype_tensor(x: np.ndarray, dtype: str):
    """The array as safetensors.numpy stores it (bf16 has no NumPy dtype: kept as raw uint16)."""
    if dtype == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(x, dtype=F32)).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    if dtype == "float16":
        return x.astype(np.float16)
    return x.astype(F32)


def tensor_sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def mlx_lm_folder(hf_dir: str, group_size: int, bits: int, dtype: str) -> dict:
    """What mlx_lm.convert(quantize=True, dtype=...) keeps for an OpenELM HF folder: tensor hashes."""
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    c = ref.resolve_config(cfg)
    sd = load_file(os.path.join(hf_dir, "model.safetensors"))
    out = {}
    for name in sorted(ref.param_shapes(c)):
        w = to_dtype(sd[name].astype(F32), dtype)
        if w.ndim == 2 and w.shape[1] % group_size == 0:
            words, s, b = quantize(w, group_size, bits, dtype)
            base = name[: -len(".weight")]
            out[name] = {"dtype": "U32", "shape": list(words.shape), "sha256": tensor_sha(words),
                         "dequantized_sha256": tensor_sha(dequantize(words, s, b, group_size, bits))}
            for k, v in ((".scales", s), (".biases", b)):
                stored = np_dtype_tensor(v, dtype)
                out[base + k] = {"dtype": dtype, "shape": list(v.shape), "sha256": tensor_sha(stored)}
        else:
            stored = np_dtype_tensor(w, dtype)
            out[name] = {"dtype": dtype, "shape": list(w.shape), "sha256": tensor_sha(stored)}
    return out


def corenet_mlx_folder(out_dir: str, group_size: int, bits: int) -> dict:
    """CoreNet's converter layout for its gpt-test size (float16, Linear layers quantized)."""
    raw = dict(num_transformer_layers=1, model_dim=128, head_dim=64, num_gqa_groups=1,
               qkv_multipliers=[0.25, 0.5], ffn_multipliers=[0.25, 0.75], ffn_dim_divisor=256,
               vocab_size=264, max_context_length=128)
    c = ref.resolve_config(raw)
    gen = torch.Generator().manual_seed(5)
    params = {k: v.to(torch.float32).numpy() for k, v in ref.init_params(c, gen).items()}
    tensors, manifest = {}, {}
    for name, w in params.items():
        cn = name[len("transformer."):]
        w = to_dtype(w, "float16")
        linear = w.ndim == 2 and not cn.startswith("token_embeddings")
        if linear:
            words, s, b = quantize(w, group_size, bits, "float16")
            base = cn[: -len(".weight")]
            tensors[cn] = words
            tensors[base + ".scales"] = s.astype(np.float16)
            tensors[base + ".biases"] = b.astype(np.float16)
            manifest[name] = tensor_sha(dequantize(words, s, b, group_size, bits))
        else:
            tensors[cn] = w.astype(np.float16)
            manifest[name] = tensor_sha(w.astype(F32))
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "weights.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"model_name": "gpt-test", "vocab_size": 264, "max_context_length": 128,
                   "quantization": {"group_size": group_size, "bits": bits}}, f, indent=2)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "mlx"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    golden = os.path.join(ROOT, "test", "golden", "gqa2-hd64")
    manifest = {
        "generator": "tools/mlx_reference.py",
        "mlx_lm": {
            "gqa2-hd64 q4 g64 float32": mlx_lm_folder(golden, 64, 4, "float32"),
            "gqa2-hd64 q8 g128 bfloat16": mlx_lm_folder(golden, 128, 8, "bfloat16"),
            "gqa2-hd64 q4 g32 float16": mlx_lm_folder(golden, 32, 4, "float16"),
        },
        "corenet_mlx": {"gpt-test-q4-g64": corenet_mlx_folder(os.path.join(args.out, "corenet-gpt-test-q4"), 64, 4)},
    }
    write_json(os.path.join(args.out, "MANIFEST.json"), manifest, indent=1, sort_keys=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
