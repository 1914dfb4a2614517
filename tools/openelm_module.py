"""OpenELM as a torch.nn.Module tree with the module names of Apple's HF code (modeling_openelm.py).

tools/openelm_ref.py is a function-of-a-dict reference; PEFT needs modules to wrap. This file lays
the same math (it calls openelm_ref's RMSNorm and RoPE) out as Apple's HF classes do, so that
`peft.get_peft_model(model, LoraConfig(target_modules=[...]))` finds and wraps exactly the modules
it would wrap on `OpenELMForCausalLM` from the hub:

    transformer.token_embeddings              nn.Embedding(vocab, dim)
    transformer.layers.N.attn_norm            RMSNorm
    transformer.layers.N.attn.qkv_proj        nn.Linear(dim, (Q+2K)*hd, bias=False)
    transformer.layers.N.attn.q_norm, k_norm  RMSNorm(hd)
    transformer.layers.N.attn.out_proj        nn.Linear(Q*hd, dim, bias=False)
    transformer.layers.N.ffn_norm             RMSNorm
    transformer.layers.N.ffn.proj_1           nn.Linear(dim, 2F, bias=False)
    transformer.layers.N.ffn.proj_2           nn.Linear(F, dim, bias=False)
    transformer.norm                          RMSNorm
    (lm_head)                                 only when share_input_output_layers is false

With a tied head, logits are `F.linear(h, self.transformer.token_embeddings.weight)`, exactly as in
Apple's OpenELMForCausalLM.forward. When PEFT wraps token_embeddings, `.weight` of the wrapper is
PEFT's BaseTunerLayer.weight property, which returns the *base* layer's weight: the tied head reads
the unadapted embedding, while the lookup goes through the adapter.

state_dict() keys equal the HF checkpoint keys, so model.safetensors loads with load_state_dict.
"""

from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

import openelm_ref as ref


class RMSNorm(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ref.rms_norm(x, self.weight)


class Attention(nn.Module):
    def __init__(self, cfg: ref.Config, i: int):
        super().__init__()
        d, hd = cfg.model_dim, cfg.head_dim
        self.nq, self.nk, self.hd = cfg.num_query_heads[i], cfg.num_kv_heads[i], hd
        self.base = cfg.rope_freq_constant
        self.qkv_proj = nn.Linear(d, (self.nq + 2 * self.nk) * hd, bias=False, dtype=torch.float64)
        self.q_norm = RMSNorm(hd)
        self.k_norm = RMSNorm(hd)
        self.out_proj = nn.Linear(self.nq * hd, d, bias=False, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        qkv = self.qkv_proj(x).reshape(b, s, self.nq + 2 * self.nk, self.hd).transpose(1, 2)
        q, k, v = qkv.split([self.nq, self.nk, self.nk], dim=1)
        q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = ref.rope_cos_sin(torch.arange(s), self.hd, self.base, x.dtype)
        q, k = ref.apply_rope(q, cos, sin), ref.apply_rope(k, cos, sin)
        group = self.nq // self.nk
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(b, s, self.nq * self.hd)
        return self.out_proj(out)


class FeedForward(nn.Module):
    def __init__(self, cfg: ref.Config, i: int):
        super().__init__()
        d, f = cfg.model_dim, cfg.ffn_dims[i]
        self.f = f
        self.proj_1 = nn.Linear(d, 2 * f, bias=False, dtype=torch.float64)
        self.proj_2 = nn.Linear(f, d, bias=False, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj_1(x)
        return self.proj_2(F.silu(u[..., : self.f]) * u[..., self.f :])


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ref.Config, i: int):
        super().__init__()
        d = cfg.model_dim
        self.attn = Attention(cfg, i)
        self.ffn = FeedForward(cfg, i)
        self.ffn_norm = RMSNorm(d)
        self.attn_norm = RMSNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attn(self.attn_norm(x))
        return h + self.ffn(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg: ref.Config):
        super().__init__()
        self.token_embeddings = nn.Embedding(cfg.vocab_size, cfg.model_dim, dtype=torch.float64)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_transformer_layers))
        self.norm = RMSNorm(cfg.model_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embeddings(ids.long())
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class OpenELMForCausalLM(nn.Module):
    def __init__(self, cfg: ref.Config, tied: bool = True):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        self.lm_head = None if tied else nn.Linear(cfg.model_dim, cfg.vocab_size, bias=False, dtype=torch.float64)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        # Only so that PEFT's task_type "CAUSAL_LM" wrapper accepts the model; never called here.
        raise NotImplementedError

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.transformer(ids)
        if self.lm_head is None:
            return F.linear(h, self.transformer.token_embeddings.weight)  # Apple's tied head
        return self.lm_head(h)


def build(cfg: ref.Config, weights: Dict[str, torch.Tensor]) -> OpenELMForCausalLM:
    """A float64 model holding `weights` (HF keys); an `lm_head.weight` key makes the head untied."""
    model = OpenELMForCausalLM(cfg, tied="lm_head.weight" not in weights)
    missing, unexpected = model.load_state_dict({k: v.to(torch.float64) for k, v in weights.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights do not fit the config: missing {missing}, unexpected {unexpected}")
    return model
