"""Small, readable PyTorch reference of OpenELM, written from docs/architecture.md and docs/training.md.

It is the exactness oracle for the TypeScript port: tools/make_goldens.py uses it to write the
fixtures under test/golden/. It favours clarity over speed and works in any float dtype; the
fixtures are computed in float64.

The model is a plain dict {HF key: tensor} plus functions, so the same tensors can be handed to
torch.optim and differentiated without module bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Number
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

Params = Dict[str, torch.Tensor]

NORM_EPS = 1e-6
IGNORE_INDEX = -100
Z_LOSS_COEF = 1e-4


# ---------------------------------------------------------------------------------------------
# Config resolution (spec 1.5)
# ---------------------------------------------------------------------------------------------


def make_divisible(v: float, divisor: int) -> int:
    """Nearest multiple of `divisor` (ties up, floor `divisor`), never more than 10% below v."""
    r = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if r < 0.9 * v:
        r += divisor
    return int(r)


def per_layer_multipliers(spec: Union[Number, Sequence[float]], n_layers: int, what: str) -> List[float]:
    """Scalar -> same for every layer; 2 values -> numpy linspace + round(v, 2); N values -> as given.

    A 2-element list is always a range, even when N == 2 (that is how the HF config class reads it;
    for N == 2 the two readings only differ when the values carry more than two decimals).
    """
    if isinstance(spec, Number):
        return [float(spec)] * n_layers
    values = [float(v) for v in spec]
    if len(values) == 2:
        return [round(float(v), 2) for v in np.linspace(values[0], values[1], num=n_layers, dtype=float)]
    if len(values) == n_layers:
        return values
    raise ValueError(f"{what}: expected a number, a 2-element range or {n_layers} values, got {len(values)}")


@dataclass(frozen=True)
class Config:
    vocab_size: int
    max_context_length: int
    num_transformer_layers: int
    model_dim: int
    head_dim: int
    num_gqa_groups: int  # query heads per kv head (group size), not the number of groups
    qkv_multipliers: Union[float, List[float]]
    ffn_multipliers: Union[float, List[float]]
    ffn_dim_divisor: int
    rope_freq_constant: float = 10000.0
    rope_max_length: int = 4096
    # resolved per layer
    qkv_per_layer: List[float] = field(default_factory=list)
    ffn_per_layer: List[float] = field(default_factory=list)
    num_query_heads: List[int] = field(default_factory=list)
    num_kv_heads: List[int] = field(default_factory=list)
    ffn_dims: List[int] = field(default_factory=list)


def resolve_config(raw: dict) -> Config:
    """Build a Config from an HF-style config.json dict; per-layer dims are recomputed, never read."""
    n = int(raw["num_transformer_layers"])
    d = int(raw["model_dim"])
    hd = int(raw["head_dim"])
    g = int(raw["num_gqa_groups"])
    qkv = per_layer_multipliers(raw["qkv_multipliers"], n, "qkv_multipliers")
    ffn = per_layer_multipliers(raw["ffn_multipliers"], n, "ffn_multipliers")
    q_heads = [make_divisible(d * m, hd * g) // hd for m in qkv]
    kv_heads = [q // g for q in q_heads]
    ffn_dims = [make_divisible(m * d, int(raw["ffn_dim_divisor"])) for m in ffn]
    return Config(
        vocab_size=int(raw["vocab_size"]),
        max_context_length=int(raw["max_context_length"]),
        num_transformer_layers=n,
        model_dim=d,
        head_dim=hd,
        num_gqa_groups=g,
        qkv_multipliers=raw["qkv_multipliers"],
        ffn_multipliers=raw["ffn_multipliers"],
        ffn_dim_divisor=int(raw["ffn_dim_divisor"]),
        rope_freq_constant=float(raw.get("rope_freq_constant", 10000)),
        rope_max_length=int(raw.get("rope_max_length", 4096)),
        qkv_per_layer=qkv,
        ffn_per_layer=ffn,
        num_query_heads=q_heads,
        num_kv_heads=kv_heads,
        ffn_dims=ffn_dims,
    )


# ---------------------------------------------------------------------------------------------
# Parameters (spec 1.6, 3.1)
# ---------------------------------------------------------------------------------------------


def param_shapes(cfg: Config) -> Dict[str, tuple]:
    """HF key -> shape, in the canonical order. Tied head: there is no lm_head key."""
    d, hd = cfg.model_dim, cfg.head_dim
    shapes = {"transformer.token_embeddings.weight": (cfg.vocab_size, d)}
    for i in range(cfg.num_transformer_layers):
        q, k, f = cfg.num_query_heads[i], cfg.num_kv_heads[i], cfg.ffn_dims[i]
        p = f"transformer.layers.{i}."
        shapes[p + "attn_norm.weight"] = (d,)
        shapes[p + "attn.qkv_proj.weight"] = ((q + 2 * k) * hd, d)
        shapes[p + "attn.q_norm.weight"] = (hd,)
        shapes[p + "attn.k_norm.weight"] = (hd,)
        shapes[p + "attn.out_proj.weight"] = (d, q * hd)
        shapes[p + "ffn_norm.weight"] = (d,)
        shapes[p + "ffn.proj_1.weight"] = (2 * f, d)
        shapes[p + "ffn.proj_2.weight"] = (d, f)
    shapes["transformer.norm.weight"] = (d,)
    return shapes


def init_params(cfg: Config, gen: torch.Generator, dtype=torch.float64, norm_jitter: float = 0.1) -> Params:
    """Spec 1.6 init. Norm weights are 1 + norm_jitter*N(0,1) instead of exactly 1, so that a port that
    ignores or swaps norm weights produces visibly wrong numbers."""
    d, n = cfg.model_dim, cfg.num_transformer_layers
    depth_std = d**-0.5 * (2 * n) ** -0.5
    params: Params = {}
    for name, shape in param_shapes(cfg).items():
        if len(shape) == 1:
            w = 1.0 + norm_jitter * torch.randn(shape, generator=gen, dtype=dtype)
        elif name.endswith("token_embeddings.weight"):
            w = torch.randn(shape, generator=gen, dtype=dtype) * d**-0.5
        elif name.endswith("attn.out_proj.weight") or name.endswith("ffn.proj_2.weight"):
            w = torch.randn(shape, generator=gen, dtype=dtype) * depth_std
        else:
            w = torch.randn(shape, generator=gen, dtype=dtype) * shape[1] ** -0.5
        params[name] = w
    return params


def is_decayed(name: str, tensor: torch.Tensor) -> bool:
    """Weight decay goes to every 2-D weight (embedding included), never to 1-D norm weights."""
    return tensor.dim() == 2


# ---------------------------------------------------------------------------------------------
# Building blocks (spec 1.2-1.4)
# ---------------------------------------------------------------------------------------------


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T for a weight in nn.Linear layout: every product with a parameter (the head included)
    goes through here, so tools/make_bf16_goldens.py can swap in bf16-rounded operands."""
    return x @ w.T


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Statistics in float32 (float64 stays float64), cast back, then scale by the weight."""
    xf = x if x.dtype == torch.float64 else x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return y.to(x.dtype) * weight


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype):
    """Rotate-half tables for absolute positions: angles concat(theta, theta), theta_j = p / base^(2j/hd)."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=work) / head_dim))
    theta = positions.to(work)[:, None] * inv_freq[None, :]
    emb = torch.cat([theta, theta], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [..., T, hd]; computed in float32 (or float64) and cast back like the reference."""
    xf = x if x.dtype == torch.float64 else x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


class KVCache:
    """Per-layer keys (after k_norm and RoPE) and values, [B, K_i, T, hd]."""

    def __init__(self, n_layers: int):
        self.k: List[Optional[torch.Tensor]] = [None] * n_layers
        self.v: List[Optional[torch.Tensor]] = [None] * n_layers
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = k, v
        else:
            self.k[layer] = torch.cat([self.k[layer], k], dim=2)
            self.v[layer] = torch.cat([self.v[layer], v], dim=2)
        return self.k[layer], self.v[layer]


def attention(params: Params, cfg: Config, i: int, x: torch.Tensor, past: int,
              cache: Optional[KVCache], cap: Optional[dict]) -> torch.Tensor:
    """x: [B, S, D] (already attn-normed); the S new tokens sit at absolute positions past..past+S-1."""
    b, s, _ = x.shape
    hd = cfg.head_dim
    nq, nk = cfg.num_query_heads[i], cfg.num_kv_heads[i]
    p = f"transformer.layers.{i}.attn."

    qkv = linear(x, params[p + "qkv_proj.weight"])  # [B, S, (Q+2K)*hd]; rows Q heads | K heads | V heads
    heads = qkv.reshape(b, s, nq + 2 * nk, hd).transpose(1, 2)  # [B, H, S, hd]
    q, k, v = heads.split([nq, nk, nk], dim=1)
    q = rms_norm(q, params[p + "q_norm.weight"])
    k = rms_norm(k, params[p + "k_norm.weight"])

    positions = torch.arange(past, past + s)
    cos, sin = rope_cos_sin(positions, hd, cfg.rope_freq_constant, x.dtype)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    if cap is not None:
        cap.update(qkv=qkv, q=q, k=k, v=v)

    if cache is not None:
        k, v = cache.append(i, k, v)
    t = k.shape[2]  # keys cover positions 0..t-1 (t == past + s)

    group = nq // nk  # query head h reads kv head h // group
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)

    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B, Q, S, t]
    # Bottom-right aligned causal mask: query row r (absolute position t-s+r) sees keys 0..t-s+r.
    allowed = torch.arange(t)[None, :] <= (torch.arange(s)[:, None] + (t - s))
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(b, s, nq * hd)  # heads back to head-major features
    if cap is not None:
        cap["attn"] = out
    return linear(out, params[p + "out_proj.weight"])


def feed_forward(params: Params, cfg: Config, i: int, x: torch.Tensor) -> torch.Tensor:
    p = f"transformer.layers.{i}.ffn."
    u = linear(x, params[p + "proj_1.weight"])
    f = cfg.ffn_dims[i]
    gate, up = u[..., :f], u[..., f:]  # first half -> SiLU gate, second half -> linear up
    return linear(torch.nn.functional.silu(gate) * up, params[p + "proj_2.weight"])


def forward(params: Params, cfg: Config, ids: torch.Tensor, cache: Optional[KVCache] = None,
            capture: Optional[dict] = None, capture_layer: int = 1) -> torch.Tensor:
    """ids [B, S] (int) -> logits [B, S, V]. With a cache, the new tokens continue after cache.length.

    capture (dict) receives the intermediates of layer `capture_layer` plus embed/final_norm.
    """
    ids = ids.long()
    past = cache.length if cache is not None else 0
    if past + ids.shape[1] > cfg.max_context_length:
        raise ValueError(f"sequence of {past + ids.shape[1]} tokens exceeds max_context_length {cfg.max_context_length}")
    emb = params["transformer.token_embeddings.weight"]
    x = emb[ids]  # no sqrt(D) scaling, no absolute positions
    if capture is not None:
        capture["embed"] = x
    for i in range(cfg.num_transformer_layers):
        p = f"transformer.layers.{i}."
        cap = capture if (capture is not None and i == capture_layer) else None
        a = rms_norm(x, params[p + "attn_norm.weight"])
        sub: Optional[dict] = {} if cap is not None else None
        attn_out = attention(params, cfg, i, a, past, cache, sub)
        h = x + attn_out
        f_in = rms_norm(h, params[p + "ffn_norm.weight"])
        f_out = feed_forward(params, cfg, i, f_in)
        x = h + f_out
        if cap is not None:
            cap.update(attn_norm=a, attn_out=attn_out, h=h, ffn_norm=f_in, ffn_out=f_out, block_out=x, **sub)
    if cache is not None:
        cache.length = past + ids.shape[1]
    x = rms_norm(x, params["transformer.norm.weight"])
    if capture is not None:
        capture["final_norm"] = x
    return linear(x, emb)  # tied head


# ---------------------------------------------------------------------------------------------
# Training pieces (spec 4.1)
# ---------------------------------------------------------------------------------------------


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_coef: float = Z_LOSS_COEF,
            ignore_index: int = IGNORE_INDEX):
    """Returns (ce, loss): ce = mean over valid targets of lse - logit[target];
    loss = ce + z_coef * mean over valid targets of lse^2 (z-loss)."""
    targets = targets.long()
    valid = targets != ignore_index
    n_valid = valid.sum()
    lse = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, torch.where(valid, targets, 0).unsqueeze(-1)).squeeze(-1)
    zero = torch.zeros((), dtype=logits.dtype)
    ce = torch.where(valid, lse - picked, zero).sum() / n_valid
    z = torch.where(valid, lse * lse, zero).sum() / n_valid
    return ce, ce + z_coef * z


def corenet_lr(t: int, max_lr: float, min_lr: float, warmup_init_lr: float, warmup_steps: int,
               max_steps: int) -> float:
    """LR before the update that follows t completed steps (CoreNet cosine with linear warm-up)."""
    if t < warmup_steps:
        return warmup_init_lr + t * (max_lr - warmup_init_lr) / warmup_steps
    progress = (t - warmup_steps) / (max_steps - warmup_steps + 1)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def greedy(params: Params, cfg: Config, prompt: Sequence[int], n_new: int, use_cache: bool = True):
    """Argmax continuation. Returns (new_ids, top2_gaps) with one gap per generated token."""
    seq = [int(t) for t in prompt]
    new: List[int] = []
    gaps: List[float] = []
    cache = KVCache(cfg.num_transformer_layers) if use_cache else None
    step_ids = torch.tensor([seq])
    for _ in range(n_new):
        if use_cache:
            logits = forward(params, cfg, step_ids, cache=cache)[0, -1]
        else:
            logits = forward(params, cfg, torch.tensor([seq]))[0, -1]
        top2 = torch.topk(logits, 2)
        nxt = int(top2.indices[0])
        gaps.append(float(top2.values[0] - top2.values[1]))
        seq.append(nxt)
        new.append(nxt)
        step_ids = torch.tensor([[nxt]])
    return new, gaps
