"""Writing committed fixtures byte for byte the same from run to run: safetensors with sorted keys,
JSON with a trailing newline, and a MANIFEST.json of each file's sha256 and size."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Iterable

import torch

_DTYPES = {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}


def save_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    """Byte-reproducible safetensors writer: sorted keys and tensors, header padded to 8 bytes.
    (safetensors.torch.save_file orders the header by hash, so its bytes differ run to run.)"""
    header: Dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()  # little-endian on every platform torch supports here
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for data in blobs:
            f.write(data)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str, obj: object, **dump_args) -> None:
    """json.dump(obj, **dump_args) and a final newline."""
    with open(path, "w") as f:
        json.dump(obj, f, **dump_args)
        f.write("\n")


def write_manifest(root: str, manifest: dict, files: Iterable[str]) -> int:
    """Records the sha256 and size of each file (relative to root, in the order given) in
    manifest["files"], writes root/MANIFEST.json, and returns the bytes of all recorded files."""
    for rel in files:
        p = os.path.join(root, rel)
        manifest["files"][rel] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    write_json(os.path.join(root, "MANIFEST.json"), manifest, indent=2)
    return sum(v["bytes"] for v in manifest["files"].values())
