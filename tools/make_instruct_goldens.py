"""Write the instruction-tuning fixtures under test/golden/instruct/ (SFT and DPO).

Two kinds of goldens, both computed independently of the TypeScript code:

1. Data: how each line of sft.jsonl / dpo.jsonl becomes token ids and loss masks, with the real
   Llama-2 tokenizer (sentencepiece on assets/tokenizer/tokenizer.model) and the chat template
   rendered by jinja2 with HF's settings (trim_blocks, lstrip_blocks). Assistant spans come from
   sentinel contents and per-token character offsets, not from the TypeScript method (prefix
   rendering). DPO length rules transcribe TRL 0.8.6's DPOTrainer.tokenize_row. -> data.json
2. Model: a tiny OpenELM (tools/openelm_ref.py, float64) on those ids folded into its vocabulary:
   SFT loss and gradients for each masking mode; DPO per-sequence log-probabilities, the sigmoid
   (with and without label smoothing), hinge and ipo losses with their gradients; three 4-step DPO
   curves (AdamW, HF cosine schedule with warm-up, clipping, gradient accumulation).
   -> model.safetensors (initial = reference weights), policy.safetensors (perturbed weights for
   the loss goldens), instruct.safetensors.

The DPO formulas follow TRL 0.8.6 (trl/trainer/dpo_trainer.py: dpo_loss, get_batch_logps), the
release line the alignment-handbook recipe for OpenELM-Instruct ran on. Where the installed TRL
computes the same thing (sigmoid without label smoothing, hinge, ipo), its DPOTrainer._compute_loss
is run on the same tensors as a cross-check (loss and gradients).

Usage: .venv/bin/python tools/make_instruct_goldens.py [--out test/golden/instruct]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import sys
import types
from typing import Dict, List, Optional, Tuple

import jinja2
import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openelm_ref as ref  # noqa: E402
from make_goldens import f32, i32  # noqa: E402
from fixture_files import save_safetensors, write_json, write_manifest  # noqa: E402

GENERATOR = "tools/make_instruct_goldens.py"
GENERATOR_VERSION = "1"
SEED = 20240614
TOKENIZER = os.path.join(HERE, "..", "assets", "tokenizer", "tokenizer.model")
BOS, EOS = 1, 2
PAD = -100

# CoreNet's openelm-instruct.yaml chat_template (the alignment-handbook's default template).
TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

SFT_MAX_LENGTH = 48
DPO_MAX_LENGTH = 64
DPO_MAX_PROMPT_LENGTH = 56

# The tiny model. Ids of the Llama-2 vocabulary are folded into its 160 rows: BOS/EOS stay, any
# other id i becomes 3 + i % 157.
MODEL = dict(vocab_size=160, max_context_length=64, rope_freq_constant=10000, num_transformer_layers=2,
             model_dim=32, head_dim=8, num_gqa_groups=2, qkv_multipliers=[0.5, 1.0], ffn_multipliers=[0.5, 2.0],
             ffn_dim_divisor=16)


def fold(ids: List[int], vocab: int = MODEL["vocab_size"]) -> List[int]:
    return [i if i < 3 else 3 + i % (vocab - 3) for i in ids]


# --------------------------------------------------------------------------------------------- data

SFT_LINES = [
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
                  {"role": "assistant", "content": "Red, or green."}]},
    {"prompt": "Q: What is 2+3?\nA:", "completion": " 5"},
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"messages": [{"role": "user", "content": "Café or tea?"}, {"role": "assistant", "content": "Café ☕, merci!"}]},
    "not json {",
    {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "{}"}, {"role": "assistant", "content": "ok"}]},
    {"prompt": "Say nothing.", "completion": ""},
    {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]},
    {"prompt": "Count: one two three four five six seven eight nine ten eleven twelve",
     "completion": " thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"},
    {"prompt": " ".join(["word"] * 60), "completion": " end"},
    "",
    {"prompt": "x", "completion": 3},
    {"messages": [{"role": "user", "content": "Multi\nline?"}, {"role": "assistant", "content": "Yes:\n- a\n- b"}]},
]

DPO_LINES = [
    {"prompt": "The sky is", "chosen": " blue.", "rejected": " made of cheese."},
    {"prompt": "Say hi", "chosen": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}],
     "rejected": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "No."}]},
    {"chosen": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Rate me"},
                {"role": "assistant", "content": "Great."}, {"role": "user", "content": "Why?"},
                {"role": "assistant", "content": "Effort."}],
     "rejected": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Rate me"},
                  {"role": "assistant", "content": "Great."}, {"role": "user", "content": "Why?"},
                  {"role": "assistant", "content": "Luck, mostly luck."}]},
    {"prompt": "List numbers:", "chosen": " " + " ".join(["one two three four five six seven eight nine ten"] * 6),
     "rejected": " 1 2 3"},
    {"prompt": " ".join(["long"] * 60), "chosen": " a", "rejected": " b"},
    {"chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "x"}],
     "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "y"}]},
    {"prompt": "Empty?", "chosen": " yes", "rejected": ""},
    {"chosen": [{"role": "user", "content": "A"}, {"role": "user", "content": "x"}],
     "rejected": [{"role": "user", "content": "A"}, {"role": "user", "content": "y"}]},
    {"prompt": [{"role": "user", "content": "Two plus two?"}], "chosen": "Four.", "rejected": "Five."},
    {"prompt": "Missing", "chosen": " rejected"},
    {"prompt": "Colour?", "chosen": [{"role": "user", "content": "Colour?"}, {"role": "assistant", "content": "Teal."}],
     "rejected": [{"role": "user", "content": "Colour?"}, {"role": "assistant", "content": "Beige, I think."}]},
]


class Skip(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


_env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
_tpl = _env.from_string(TEMPLATE)


def render(messages, add_generation_prompt=False) -> str:
    return _tpl.render(messages=messages, bos_token="<s>", eos_token="</s>", add_generation_prompt=add_generation_prompt)


class Tok:
    def __init__(self, path: str):
        self.sp = spm.SentencePieceProcessor(model_file=path)

    def encode(self, s: str) -> List[int]:
        return self.sp.encode(s)

    def encode_offsets(self, s: str) -> Tuple[List[int], List[Tuple[int, int]]]:
        """Ids of s and each token's character range in s (the dummy prefix space maps to 0)."""
        ids = self.sp.encode(s)
        norm = (" " + s).encode("utf-8")
        char_at = []  # byte offset in norm -> char offset in s
        for ci, ch in enumerate(" " + s):
            char_at.extend([ci - 1] * len(ch.encode("utf-8")))
        char_at.append(len(s))
        spans, b = [], 0
        for i in ids:
            p = self.sp.id_to_piece(i)
            n = 1 if self.sp.is_byte(i) else len(p.replace("\u2581", " ").encode("utf-8"))
            lo, hi = char_at[b], char_at[b + n] if b + n < len(char_at) else len(s)
            spans.append((max(lo, 0), max(hi, 0)))
            b += n
        assert b == len(norm), (s, b, len(norm))
        return ids, spans

    def encode_chat(self, text: str):
        """HF-style: </s> and <s> are split out as their ids, every other segment encoded on its own.
        Returns ids (BOS first) and per-token character ranges in text."""
        ids, spans, pos = [BOS], [(0, 0)], 0
        while pos <= len(text):
            hits = [(text.find(s, pos), -len(s), s) for s in ("</s>", "<s>") if text.find(s, pos) >= 0]
            at, _, s = min(hits) if hits else (-1, 0, "")
            end = len(text) if at < 0 else at
            if end > pos:
                sub, sub_spans = self.encode_offsets(text[pos:end])
                ids += sub
                spans += [(pos + a, pos + b) for a, b in sub_spans]
            if at < 0:
                break
            ids.append(EOS if s == "</s>" else BOS)
            spans.append((at, at + len(s)))
            pos = at + len(s)
        if len(ids) > 1 and ids[1] == BOS and spans[1] == (0, 3):
            ids, spans = ids[1:], spans[1:]
        return ids, spans


def check_messages(msgs, field):
    if not isinstance(msgs, list) or not msgs:
        raise Skip("malformed")
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise Skip("malformed")
        if m["role"] not in ("system", "user", "assistant"):
            raise Skip("malformed")


def assistant_mask(tok: Tok, msgs) -> Tuple[List[int], List[int]]:
    """ids of the rendered conversation and a 0/1 mask: tokens overlapping an assistant message's
    content or the </s> right after it. Content positions come from sentinel renderings."""
    text = render(msgs)
    marked = copy.deepcopy(msgs)
    for k, m in enumerate(marked):
        if m["role"] == "assistant":
            m["content"] = f"\ue000{k}\ue001"
    rendered = render(marked)
    spans, out, pos = [], "", 0
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        sentinel = f"\ue000{k}\ue001"
        at = rendered.index(sentinel, pos)
        out += rendered[pos:at]
        start = len(out)
        out += m["content"]
        assert text[start + len(m["content"]):].startswith("</s>")
        spans.append((start, start + len(m["content"]) + len("</s>")))
        pos = at + len(sentinel)
    out += rendered[pos:]
    assert out == text
    ids, offs = tok.encode_chat(text)
    mask = [0] * len(ids)
    for i, (a, b) in enumerate(offs):
        if i == 0:
            continue
        for s, e in spans:
            if b > s and a < e:
                mask[i] = 1
    return ids, mask


def sft_example(tok: Tok, line, mask_prompt: bool, max_length: int):
    if not isinstance(line, dict):
        raise Skip("malformed")
    if "messages" in line:
        msgs = line["messages"]
        check_messages(msgs, "messages")
        if mask_prompt and not any(m["role"] == "assistant" for m in msgs):
            raise Skip("malformed")
        if any(m["role"] == "assistant" and not m["content"].strip() for m in msgs):
            raise Skip("empty")
        ids, mask = assistant_mask(tok, msgs)
        if not mask_prompt:
            mask = [0] + [1] * (len(ids) - 1)
        kind = "messages"
    elif "prompt" in line or "completion" in line:
        p, c = line.get("prompt"), line.get("completion")
        if not isinstance(p, str) or not isinstance(c, str):
            raise Skip("malformed")
        if not c.strip():
            raise Skip("empty")
        pi, ci = tok.encode(p), tok.encode(c)
        ids = [BOS] + pi + ci + [EOS]
        first = 1 + len(pi) if mask_prompt else 1
        mask = [1 if i >= first else 0 for i in range(len(ids))]
        kind = "prompt_completion"
    elif "text" in line:
        if not isinstance(line["text"], str):
            raise Skip("malformed")
        if not line["text"].strip():
            raise Skip("empty")
        ids = [BOS] + tok.encode(line["text"]) + [EOS]
        mask = [0] + [1] * (len(ids) - 1)
        kind = "text"
    else:
        raise Skip("malformed")
    truncated = len(ids) > max_length
    ids, mask = ids[:max_length], mask[:max_length]  # TRL SFT: keep the start
    if sum(mask) == 0:
        raise Skip("too_long")
    return {"kind": kind, "ids": ids, "trained": mask, "truncated": truncated}


def tokenize_row_trl086(prompt_ids: List[int], chosen_ids: List[int], rejected_ids: List[int], max_length: int,
                        max_prompt_length: int, truncation_mode: str = "keep_end"):
    """TRL 0.8.6 DPOTrainer.tokenize_row's length handling, on ids that already carry BOS (prompt)
    and EOS (completions). Returns (prompt, chosen, rejected) as the trainer would use them."""
    chosen_tokens = {"prompt_input_ids": list(prompt_ids), "input_ids": list(chosen_ids)}
    rejected_tokens = {"prompt_input_ids": list(prompt_ids), "input_ids": list(rejected_ids)}
    prompt_tokens = {"prompt_input_ids": list(prompt_ids)}
    longer_response_length = max(len(chosen_tokens["input_ids"]), len(rejected_tokens["input_ids"]))
    for answer_tokens in [chosen_tokens, rejected_tokens, prompt_tokens]:
        if len(answer_tokens["prompt_input_ids"]) + longer_response_length > max_length:
            if truncation_mode == "keep_start":
                answer_tokens["prompt_input_ids"] = answer_tokens["prompt_input_ids"][:max_prompt_length]
            else:
                answer_tokens["prompt_input_ids"] = answer_tokens["prompt_input_ids"][-max_prompt_length:]
    for answer_tokens in [chosen_tokens, rejected_tokens]:
        if len(answer_tokens["prompt_input_ids"]) + longer_response_length > max_length:
            answer_tokens["input_ids"] = answer_tokens["input_ids"][: max_length - max_prompt_length]
    return chosen_tokens["prompt_input_ids"], chosen_tokens["input_ids"], rejected_tokens["input_ids"]


def chat_completion(tok: Tok, prompt_msgs, answer):
    ids, mask = assistant_mask(tok, prompt_msgs + [answer])
    last = [i for i, m in enumerate(mask) if m]
    # the final assistant span only: from its first trained token to the trained token before the end
    end = last[-1] + 1
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    return ids[:start], ids[start:end]


def dpo_pair(tok: Tok, line, max_length: int, max_prompt_length: int):
    if not isinstance(line, dict) or "chosen" not in line or "rejected" not in line:
        raise Skip("malformed")
    c, r, p = line["chosen"], line["rejected"], line.get("prompt")
    if isinstance(c, list) != isinstance(r, list):
        raise Skip("malformed")
    chat = True
    if isinstance(p, list):
        check_messages(p, "prompt")
        answers = []
        for x in (c, r):
            if isinstance(x, str):
                if not x.strip():
                    raise Skip("empty")
                answers.append({"role": "assistant", "content": x})
            else:
                check_messages(x, "completion")
                if len(x) != 1 or x[0]["role"] != "assistant":
                    raise Skip("malformed")
                if not x[0]["content"].strip():
                    raise Skip("empty")
                answers.append(x[0])
        pc, cc = chat_completion(tok, p, answers[0])
        pr, rr = chat_completion(tok, p, answers[1])
    elif isinstance(c, list):
        check_messages(c, "chosen")
        check_messages(r, "rejected")
        if c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
            raise Skip("malformed")
        if not c[-1]["content"].strip() or not r[-1]["content"].strip():
            raise Skip("empty")
        if c[:-1] != r[:-1]:
            raise Skip("malformed")
        prompt_msgs = c[:-1] or ([{"role": "user", "content": p}] if isinstance(p, str) and p.strip() else None)
        if prompt_msgs is None:
            raise Skip("malformed")
        pc, cc = chat_completion(tok, prompt_msgs, c[-1])
        pr, rr = chat_completion(tok, prompt_msgs, r[-1])
    else:
        chat = False
        if not isinstance(p, str) or not isinstance(c, str) or not isinstance(r, str):
            raise Skip("malformed")
        if not c.strip() or not r.strip():
            raise Skip("empty")
        pc = pr = [BOS] + tok.encode(p)
        cc, rr = tok.encode(c) + [EOS], tok.encode(r) + [EOS]
    assert pc == pr
    if len(pc) > max_prompt_length:
        raise Skip("too_long")
    prompt, chosen, rejected = tokenize_row_trl086(pc, cc, rr, max_length, max_prompt_length)
    truncated = len(chosen) < len(cc) or len(rejected) < len(rr)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "truncated": truncated, "chat": chat}


def run_lines(lines, fn):
    out = []
    for n, line in enumerate(lines, start=1):
        if line == "":
            continue
        try:
            out.append({"line": n, **fn(line)})
        except Skip as s:
            out.append({"line": n, "skip": s.kind})
    return out


def jsonl_text(lines) -> str:
    return "".join((json.dumps(x, ensure_ascii=False) if not isinstance(x, str) else x) + "\n" for x in lines)


# --------------------------------------------------------------------------------------------- model

def hf_config() -> dict:
    cfg = ref.resolve_config(MODEL)
    return {
        "architectures": ["OpenELMForCausalLM"], "model_type": "openelm", "activation_fn_name": "swish",
        "bos_token_id": 1, "eos_token_id": 2, "ffn_dim_divisor": MODEL["ffn_dim_divisor"],
        "ffn_multipliers": MODEL["ffn_multipliers"], "ffn_with_glu": True, "head_dim": MODEL["head_dim"],
        "initializer_range": 0.02, "max_context_length": MODEL["max_context_length"], "model_dim": MODEL["model_dim"],
        "normalization_layer_name": "rms_norm", "normalize_qk_projections": True,
        "num_gqa_groups": MODEL["num_gqa_groups"], "num_kv_heads": cfg.num_kv_heads,
        "num_query_heads": cfg.num_query_heads, "num_transformer_layers": MODEL["num_transformer_layers"],
        "qkv_multipliers": MODEL["qkv_multipliers"], "rope_freq_constant": MODEL["rope_freq_constant"],
        "rope_max_length": 4096, "share_input_output_layers": True, "torch_dtype": "float32", "use_cache": True,
        "vocab_size": MODEL["vocab_size"],
    }


def collate(rows: List[Tuple[List[int], List[int]]]):
    """rows of (ids, trained) -> inputs/targets [B, T] with PAD (-100): inputs ids[:-1], targets ids[1:] where trained."""
    T = max(len(ids) - 1 for ids, _ in rows)
    inputs = torch.full((len(rows), T), PAD, dtype=torch.long)
    targets = torch.full((len(rows), T), PAD, dtype=torch.long)
    for b, (ids, tr) in enumerate(rows):
        n = len(ids)
        inputs[b, : n - 1] = torch.tensor(ids[:-1])
        for t in range(n - 1):
            if tr[t + 1]:
                targets[b, t] = ids[t + 1]
    return inputs, targets


def logits_of(params, cfg, inputs: torch.Tensor) -> torch.Tensor:
    # Padding follows each row's tokens; under causal attention it never reaches them. The
    # reference embeds it as id 0 (the TypeScript model embeds zeros); either way it is inert.
    return ref.forward(params, cfg, torch.where(inputs == PAD, 0, inputs))


def sft_loss(params, cfg, inputs, targets):
    ce, _ = ref.lm_loss(logits_of(params, cfg, inputs), targets, z_coef=0.0)
    return ce


def seq_logps(params, cfg, inputs, targets, average=False):
    """TRL's get_batch_logps on our shifted layout: per row Σ log p(target) over non-PAD targets."""
    logp = torch.log_softmax(logits_of(params, cfg, inputs), dim=-1)
    mask = targets != PAD
    picked = logp.gather(-1, torch.where(mask, targets, 0).unsqueeze(-1)).squeeze(-1)
    s = (picked * mask).sum(-1)
    return s / mask.sum(-1) if average else s


def dpo_loss_trl086(pc, pr, rc, rr, beta, label_smoothing, loss_type):
    """TRL 0.8.6 DPOTrainer.dpo_loss (reference_free False)."""
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return losses, chosen_rewards, rejected_rewards


METRIC_KEYS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"]


def dpo_forward(params, cfg, batch, ref_c, ref_r, beta, ls, loss_type):
    """Loss (mean over pairs) and TRL's metrics for one micro-batch. ref_* are sums (averaged here for ipo)."""
    inputs, targets, P = batch
    avg = loss_type == "ipo"
    lp = seq_logps(params, cfg, inputs, targets, average=avg)
    pc, pr = lp[:P], lp[P:]
    if avg:
        n = (targets != PAD).sum(-1).to(lp.dtype)
        rc, rr = ref_c / n[:P], ref_r / n[P:]
    else:
        rc, rr = ref_c, ref_r
    losses, cr, rj = dpo_loss_trl086(pc, pr, rc, rr, beta, ls, loss_type)
    metrics = [cr.mean(), rj.mean(), (cr > rj).to(lp.dtype).mean(), (cr - rj).mean(), pc.detach().mean(), pr.detach().mean()]
    return losses.mean(), losses, pc, pr, torch.stack([torch.as_tensor(m, dtype=lp.dtype) for m in metrics])


def trl_cross_check(params, cfg, batch, ref_c, ref_r, beta, loss_type, our_loss, our_grads):
    """Run the installed TRL's DPOTrainer._compute_loss on the same rows (sigmoid without label
    smoothing, hinge, ipo coincide with TRL 0.8.6) and compare loss and gradients."""
    try:
        import trl
        from trl.trainer.dpo_trainer import DPOTrainer
    except ImportError:
        print(f"  TRL cross-check of {loss_type} skipped: trl is not installed")
        return

    inputs, targets, P = batch
    # TRL's layout: input_ids [2P, L] with the labels inside; completion_mask marks completion tokens.
    B, T = inputs.shape
    ids = torch.zeros((B, T + 1), dtype=torch.long)
    cmask = torch.zeros((B, T + 1), dtype=torch.long)
    amask = torch.zeros((B, T + 1), dtype=torch.long)
    for b in range(B):
        n = int((inputs[b] != PAD).sum())
        ids[b, :n] = inputs[b, :n]
        ids[b, n] = targets[b, n - 1] if targets[b, n - 1] != PAD else 0
        amask[b, : n + 1] = 1
        cmask[b, 1 : n + 1] = (targets[b, :n] != PAD).long()
        ids[b, 1 : n + 1] = torch.where(targets[b, :n] != PAD, targets[b, :n], ids[b, 1 : n + 1])
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}

    class Model(torch.nn.Module):
        training = True

        def forward(self, input_ids, attention_mask=None, use_cache=False, **kw):
            return types.SimpleNamespace(logits=ref.forward(leaves, cfg, input_ids))

    class Acc:
        device = torch.device("cpu")

        def gather(self, x):
            return x

        def gather_for_metrics(self, x):
            return x

    from collections import defaultdict
    stub = types.SimpleNamespace(
        model=Model(), accelerator=Acc(), aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=0.0,
        use_weighting=False, _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
        _tp_size=1, args=types.SimpleNamespace(), f_alpha_divergence_coef=1.0,
    )
    inputs_trl = {"input_ids": ids, "attention_mask": amask, "completion_mask": cmask,
                  "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    loss = DPOTrainer._compute_loss(stub, stub.model, inputs_trl, False)
    loss = loss[0] if isinstance(loss, tuple) else loss
    loss.backward()
    d_loss = abs(float(loss.detach()) - float(our_loss.detach()))
    d_grad = max(float((leaves[k].grad - our_grads[k]).abs().max()) for k in leaves)
    print(f"  TRL {trl.__version__} _compute_loss cross-check {loss_type}: |loss diff| {d_loss:.2e}, max |grad diff| {d_grad:.2e}")
    assert d_loss < 1e-10 and d_grad < 1e-10, (loss_type, d_loss, d_grad)


def hf_cosine_lr(t: int, max_lr: float, warmup: int, total: int) -> float:
    """transformers get_cosine_schedule_with_warmup (num_cycles 0.5) at optimizer step t (0-based)."""
    if t < warmup:
        return max_lr * t / max(1, warmup)
    progress = (t - warmup) / max(1, total - warmup)
    return max_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


CURVE = dict(steps=4, pairs_per_micro_batch=2, grad_accum=2, lr=3e-3, warmup_steps=2, betas=[0.9, 0.999], eps=1e-8,
             weight_decay=0.0, clip=1.0, order="file order, wrapping to the next epoch",
             schedule="hf_cosine: t<W: lr*t/W; else lr*0.5*(1+cos(pi*(t-W)/(T-W)))",
             micro_batch_loss="mean over its pairs; gradients scaled by 1/grad_accum; logged loss = mean of micro-batch losses")
CURVE_LOSSES = {"sigmoid": dict(beta=0.1, label_smoothing=0.1), "hinge": dict(beta=0.1, label_smoothing=0.0),
                "ipo": dict(beta=0.1, label_smoothing=0.0)}


def dpo_curve(params0, cfg, pairs, loss_type, beta, ls):
    """4 optimizer steps from params0 (also the frozen reference)."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in params0.items()}
    opt = torch.optim.AdamW(list(leaves.values()), lr=CURVE["lr"], betas=tuple(CURVE["betas"]), eps=CURVE["eps"],
                            weight_decay=CURVE["weight_decay"], foreach=False)
    ref_cache: Dict[int, Tuple[float, float]] = {}
    k = 0
    losses, norms, lrs, metrics = [], [], [], []
    for t in range(CURVE["steps"]):
        lr = hf_cosine_lr(t, CURVE["lr"], CURVE["warmup_steps"], CURVE["steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        step_loss, step_metrics = 0.0, torch.zeros(6, dtype=torch.float64)
        for _ in range(CURVE["grad_accum"]):
            idx = [(k + j) % len(pairs) for j in range(CURVE["pairs_per_micro_batch"])]
            k += CURVE["pairs_per_micro_batch"]
            batch = pair_batch([pairs[i] for i in idx])
            # once per pair, from the initial weights (computed in the batch the pair first appears in,
            # so that at step 0, where policy == reference, the rewards are exactly 0 and not rounding noise)
            with torch.no_grad():
                s = seq_logps(params0, cfg, batch[0], batch[1])
            for j, i in enumerate(idx):
                if i not in ref_cache:
                    ref_cache[i] = (float(s[j]), float(s[len(idx) + j]))
            ref_c = torch.tensor([ref_cache[i][0] for i in idx], dtype=torch.float64)
            ref_r = torch.tensor([ref_cache[i][1] for i in idx], dtype=torch.float64)
            loss, _, _, _, m = dpo_forward(leaves, cfg, batch, ref_c, ref_r, beta, ls, loss_type)
            (loss / CURVE["grad_accum"]).backward()
            step_loss += float(loss.detach()) / CURVE["grad_accum"]
            step_metrics += m.detach() / CURVE["grad_accum"]
        norm = torch.nn.utils.clip_grad_norm_(list(leaves.values()), CURVE["clip"], foreach=False)
        opt.step()
        losses.append(step_loss); norms.append(float(norm)); lrs.append(lr); metrics.append(step_metrics)
    return losses, norms, lrs, torch.stack(metrics), {k: v.detach() for k, v in leaves.items()}


def pair_batch(pairs):
    rows = [(p["prompt"] + p["chosen"], [0] * len(p["prompt"]) + [1] * len(p["chosen"])) for p in pairs]
    rows += [(p["prompt"] + p["rejected"], [0] * len(p["prompt"]) + [1] * len(p["rejected"])) for p in pairs]
    rows = [(fold(ids), tr) for ids, tr in rows]
    inputs, targets = collate(rows)
    return inputs, targets, len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "test", "golden", "instruct"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    tok = Tok(TOKENIZER)

    # ---- data goldens
    sft_masked = run_lines(SFT_LINES, lambda l: sft_example(tok, l, True, SFT_MAX_LENGTH))
    sft_all = run_lines(SFT_LINES, lambda l: sft_example(tok, l, False, SFT_MAX_LENGTH))
    dpo = run_lines(DPO_LINES, lambda l: dpo_pair(tok, l, DPO_MAX_LENGTH, DPO_MAX_PROMPT_LENGTH))
    for name, res in [("sft mask_prompt", sft_masked), ("sft all", sft_all), ("dpo", dpo)]:
        kept = [r for r in res if "skip" not in r]
        skips = {}
        for r in res:
            if "skip" in r:
                skips[r["skip"]] = skips.get(r["skip"], 0) + 1
        print(f"{name}: kept {len(kept)} (truncated {sum(r['truncated'] for r in kept)}), skipped {skips}")
    data = {"template": TEMPLATE, "sft": {"max_length": SFT_MAX_LENGTH, "mask_prompt": sft_masked, "all": sft_all},
            "dpo": {"max_length": DPO_MAX_LENGTH, "max_prompt_length": DPO_MAX_PROMPT_LENGTH, "pairs": dpo}}
    with open(os.path.join(out, "sft.jsonl"), "w", encoding="utf-8") as f:
        f.write(jsonl_text(SFT_LINES))
    with open(os.path.join(out, "dpo.jsonl"), "w", encoding="utf-8") as f:
        f.write(jsonl_text(DPO_LINES))
    with open(os.path.join(out, "data.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    # ---- model goldens
    config_json = hf_config()
    cfg = ref.resolve_config(config_json)
    gen = torch.Generator().manual_seed(SEED)
    params = {k: v.to(torch.float32).to(torch.float64) for k, v in ref.init_params(cfg, gen).items()}
    policy = {k: (v + 0.15 * v.abs().mean() * torch.randn(v.shape, generator=gen, dtype=torch.float64)).to(torch.float32).to(torch.float64)
              for k, v in params.items()}
    tensors: Dict[str, torch.Tensor] = {}

    def grads_of(loss_fn, p):
        leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        loss = loss_fn(leaves)
        (loss[0] if isinstance(loss, tuple) else loss).backward()
        return loss, {k: v.grad for k, v in leaves.items()}

    for mode, res in [("mask_prompt", sft_masked), ("all", sft_all)]:
        rows = [(fold(r["ids"]), r["trained"]) for r in res if "skip" not in r]
        inputs, targets = collate(rows)
        loss, g = grads_of(lambda p: sft_loss(p, cfg, inputs, targets), params)
        tensors[f"sft.{mode}.input_ids"] = i32(inputs)
        tensors[f"sft.{mode}.targets"] = i32(targets)
        tensors[f"sft.{mode}.loss"] = f32(loss)
        for k, v in g.items():
            tensors[f"sft.{mode}.grad.{k}"] = f32(v)
        print(f"sft {mode}: rows {inputs.shape[0]} T {inputs.shape[1]} trained {int((targets != PAD).sum())} loss {float(loss.detach()):.6f}")

    pairs = [r for r in dpo if "skip" not in r]
    batch = pair_batch(pairs)
    P = len(pairs)
    with torch.no_grad():
        ref_lp = seq_logps(params, cfg, batch[0], batch[1])
        pol_lp = seq_logps(policy, cfg, batch[0], batch[1])
    ref_c, ref_r = ref_lp[:P], ref_lp[P:]
    tensors["dpo.input_ids"] = i32(batch[0])
    tensors["dpo.targets"] = i32(batch[1])
    tensors["dpo.ref_logps"] = f32(ref_lp)
    tensors["dpo.policy_logps"] = f32(pol_lp)
    z = (pol_lp[:P] - pol_lp[P:]) - (ref_c - ref_r)
    print(f"dpo: {P} pairs, T {batch[0].shape[1]}, z = {[round(float(x), 4) for x in z]}")
    zmax = float(z.max())
    assert zmax > 0, "no pair with a positive margin: pick another seed"
    configs = {
        "sigmoid": dict(loss_type="sigmoid", beta=0.1, label_smoothing=0.0),
        "sigmoid_ls": dict(loss_type="sigmoid", beta=0.1, label_smoothing=0.2),
        # beta such that the best pair's hinge is inactive (1 - beta*z < 0) and the others are not
        "hinge": dict(loss_type="hinge", beta=round(2.0 / zmax, 6), label_smoothing=0.0),
        "ipo": dict(loss_type="ipo", beta=0.1, label_smoothing=0.0),
    }
    loss_meta = {}
    for name, c in configs.items():
        (loss, losses, pc, pr, m), g = grads_of(
            lambda p: dpo_forward(p, cfg, batch, ref_c, ref_r, c["beta"], c["label_smoothing"], c["loss_type"]), policy)
        # ∂loss/∂(per-sequence sums), by autograd on the loss as a function of the sums
        sums = pol_lp.clone().requires_grad_(True)
        n = (batch[1] != PAD).sum(-1).to(torch.float64)
        scale = 1 / n if c["loss_type"] == "ipo" else torch.ones_like(n)
        ls_, _, _ = dpo_loss_trl086(sums[:P] * scale[:P], sums[P:] * scale[P:], ref_c * scale[:P], ref_r * scale[P:],
                                    c["beta"], c["label_smoothing"], c["loss_type"])
        ls_.mean().backward()
        tensors[f"dpo.{name}.loss"] = f32(loss)
        tensors[f"dpo.{name}.losses"] = f32(losses)
        tensors[f"dpo.{name}.d_logps"] = f32(sums.grad)
        tensors[f"dpo.{name}.metrics"] = f32(m)
        for k, v in g.items():
            tensors[f"dpo.{name}.grad.{k}"] = f32(v)
        loss_meta[name] = c
        active = [round(float(x), 5) for x in losses.detach()]
        print(f"dpo {name}: loss {float(loss.detach()):.6f} per pair {active}")
        if c["label_smoothing"] == 0.0:
            trl_cross_check(policy, cfg, batch, ref_c, ref_r, c["beta"], c["loss_type"], loss, g)

    curve_meta = {}
    for name, c in CURVE_LOSSES.items():
        losses, norms, lrs, metrics, final = dpo_curve(params, cfg, pairs, name, c["beta"], c["label_smoothing"])
        tensors[f"curve.{name}.loss"] = f32(torch.tensor(losses))
        tensors[f"curve.{name}.grad_norm"] = f32(torch.tensor(norms))
        tensors[f"curve.{name}.lr"] = f32(torch.tensor(lrs))
        tensors[f"curve.{name}.metrics"] = f32(metrics)
        for k, v in final.items():
            tensors[f"curve.{name}.final.{k}"] = f32(v)
        curve_meta[name] = c
        print(f"curve {name}: loss {[round(x, 6) for x in losses]} grad_norm {[round(x, 4) for x in norms]}")

    versions = {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "torch_version": torch.__version__,
                "numpy_version": np.__version__, "python_version": platform.python_version(),
                "sentencepiece_version": spm.__version__, "jinja2_version": jinja2.__version__}
    metadata = {**versions, "format": "openelm-instruct-golden", "seed": str(SEED), "compute_dtype": "float64",
                "stored_dtype": "float32", "config": json.dumps(config_json, sort_keys=True),
                "fold": "ids >= 3 become 3 + id % (vocab_size - 3)", "dpo_losses": json.dumps(loss_meta),
                "curve": json.dumps({**CURVE, "losses": curve_meta}), "metric_keys": json.dumps(METRIC_KEYS)}
    write_json(os.path.join(out, "config.json"), config_json, indent=2, sort_keys=True)
    save_safetensors(os.path.join(out, "model.safetensors"), {k: f32(v) for k, v in params.items()}, {"format": "pt"})
    save_safetensors(os.path.join(out, "policy.safetensors"), {k: f32(v) for k, v in policy.items()}, {"format": "pt"})
    save_safetensors(os.path.join(out, "instruct.safetensors"), tensors, metadata)
    manifest = {**versions, "seed": SEED, "files": {}}
    total = write_manifest(out, manifest, [f for f in sorted(os.listdir(out)) if f not in ("MANIFEST.json", "SOURCE.md")])
    print(f"wrote {len(manifest['files'])} files, {total / 1e3:.0f} kB, to {out}")


if __name__ == "__main__":
    main()
