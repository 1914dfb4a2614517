"""Write the evaluation-harness fixtures under test/golden/eval/ (what `openelm eval` must reproduce).

Everything here is computed independently of the TypeScript code:
- prompts are built with Python's own str methods (rstrip, strip, capitalize, split), Python's
  random.Random(1234).sample, csv + ast.literal_eval for MMLU-Redux and RACE, pandas for CrowS-Pairs,
  following lm-eval's task YAMLs at commit dc90fec; with --lm-eval-src the few-shot blocks come from
  lm-eval's own lm_eval/api/samplers.py and RACE's and CrowS-Pairs' renderings from that checkout's
  task files (pure Python);
- the LLM-Adapters commonsense tasks follow CoreNet's main_eval_llmadapters.py (multiple-choice
  mode): random.seed(83652) + random.shuffle, the Alpaca prompt, candidates "the correct answer is
  <x>" read off the instruction's last line, and numpy argmax for the predictions;
- token ids come from SentencePiece itself (the Llama-2 tokenizer.model bundled in assets/),
  with BOS prepended as HF's LlamaTokenizer does under add_bos_token=True;
- log-likelihoods come from the float64 PyTorch reference tools/openelm_ref.py, using lm-eval's
  HFLM recipe: input (ctx + cont)[-(L+1):][:-1], log_softmax, sum over the continuation.

The model is a tiny OpenELM with the real 32000-token vocabulary whose weights are a closed-form
hash of (tensor name, element index), so the TypeScript test rebuilds it without a weights file
(formula in weight_values(); test/golden/eval/formula-model.ts is its TypeScript twin).

Tasks whose data openelm does not ship (SciQ, CrowS-Pairs, RACE, the LLM-Adapters HellaSwag test set)
are checked on the hand-written files in test/fixtures/eval-data/.

Usage: .venv/bin/python tools/eval_goldens.py [--lm-eval-src /path/to/lm-evaluation-harness@dc90fec]
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import hashlib
import importlib.util
import io
import json
import math
import os
import platform
import random
import re
import sys
from types import SimpleNamespace
from typing import Dict, List, Tuple

import brotli
import numpy as np
import pandas as pd
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import openelm_ref as ref  # noqa: E402

try:
    import sentencepiece as spm
except ImportError:  # Debian ships python3-sentencepiece outside the venv
    sys.path.append("/usr/lib/python3/dist-packages")
    import sentencepiece as spm

GENERATOR_VERSION = "2"
DATA = os.path.join(ROOT, "data", "eval")
FIX = os.path.join(ROOT, "test", "fixtures", "eval-data")
OUT = os.path.join(ROOT, "test", "golden", "eval")

MODEL_CONFIG = dict(vocab_size=32000, max_context_length=512, num_transformer_layers=2, model_dim=64, head_dim=16,
                    num_gqa_groups=2, qkv_multipliers=[0.5, 1.0], ffn_multipliers=[0.5, 2.0], ffn_dim_divisor=16,
                    rope_freq_constant=10000, rope_max_length=512)
BOS, EOS = 1, 2
TRUNC_MAX_LENGTH = 48
IDS_DOCS = 1000
ROLLING_MAX_LENGTH = 32

# ---------------------------------------------------------------------------------------------
# The formula model
# ---------------------------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def fnv1a(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def weight_values(name: str, shape: tuple, fan_in: int) -> np.ndarray:
    """uniform[-1,1) from a 32-bit hash of (name, index), scaled; rounded to float32 like a checkpoint."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B9) + np.uint64(fnv1a(name))) & np.uint64(M32)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    h ^= h >> np.uint64(16)
    x = (h >> np.uint64(8)).astype(np.float64) / 16777216.0 * 2.0 - 1.0
    if len(shape) == 1:
        v = 1.0 + 0.1 * x
    elif name.endswith("token_embeddings.weight"):
        v = x * 0.5  # logits of a few units, like a trained model's, keep float32 sums well inside TOL.loglik
    else:
        v = x * math.sqrt(3.0 / fan_in)
    return v.astype(np.float32).astype(np.float64).reshape(shape)


def formula_params(cfg: ref.Config) -> ref.Params:
    return {k: torch.from_numpy(weight_values(k, s, s[-1])) for k, s in ref.param_shapes(cfg).items()}


# ---------------------------------------------------------------------------------------------
# Data (the vendored files under data/eval)
# ---------------------------------------------------------------------------------------------


def read_text(path: str, encoding: str = "utf-8") -> str:
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.endswith(".br"):
        raw = brotli.decompress(raw)
    t = raw.decode(encoding)
    return t[1:] if t.startswith("\ufeff") else t


def jsonl(path: str) -> List[dict]:
    return [json.loads(l) for l in read_text(path).split("\n") if l.strip()]


def parse_adapters_arc(rec: dict) -> dict:
    body = rec["instruction"][len("Please choose the correct answer to the question: "):]
    body = body[: body.rindex("\n\nAnswer format: ")]
    a = body.rindex("\n\nAnswer1: ")
    parts = re.split(r"(?:^| )Answer(\d+): ", body[a + 2:])
    return {"question": body[:a], "choices": parts[2::2], "gold": int(rec["answer"][len("answer"):]) - 1}


def hellaswag_pre(text: str) -> str:
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


LLM_ADAPTERS = {"llmadapters_boolq": "boolq", "llmadapters_piqa": "piqa", "llmadapters_social_i_qa": "social_i_qa",
                "llmadapters_hellaswag": "hellaswag", "llmadapters_winogrande": "winogrande",
                "llmadapters_arc_challenge": "ARC-Challenge", "llmadapters_arc_easy": "ARC-Easy", "llmadapters_openbookqa": "openbookqa"}
FIXTURE_TASKS = ("sciq", "crows_pairs_english", "race", "llmadapters_hellaswag")


def load(task: str, split: str) -> List[dict]:
    d = os.path.join(DATA, task)
    if task in LLM_ADAPTERS:
        folder = LLM_ADAPTERS[task]
        if task == "llmadapters_hellaswag":
            path = os.path.join(FIX, "llm_adapters", folder, "test.json")
        elif folder.startswith("ARC-"):
            path = os.path.join(DATA, "arc_easy" if folder == "ARC-Easy" else "arc_challenge", f"{folder}.test.json.br")
        else:
            path = os.path.join(DATA, "llm_adapters", folder, "test.json.br")
        dataset = json.loads(read_text(path))
        # main_eval_llmadapters: "random.seed(83652); random.shuffle(dataset)" on the module generator.
        random.seed(83652)
        random.shuffle(dataset)
        return dataset
    if task == "sciq":
        return json.loads(read_text(os.path.join(FIX, "sciq", "test.json")))
    if task == "crows_pairs_english":
        # BigScienceBiasEval/crows_pairs_multilingual reads the TSV this way.
        df = pd.read_csv(os.path.join(FIX, "crows_pairs", "crows_pairs_EN_revised+210.csv"), sep="\t", index_col=0)
        return df.to_dict(orient="records")
    if task == "race":
        return jsonl(os.path.join(FIX, "race", "test.jsonl"))
    if task in ("arc_easy", "arc_challenge"):
        cfg = "ARC-Easy" if task == "arc_easy" else "ARC-Challenge"
        return [parse_adapters_arc(r) for r in json.loads(read_text(os.path.join(d, f"{cfg}.{split}.json.br")))]
    if task == "boolq":
        return [{"passage": r["passage"], "question": r["question"], "label": int(r["answer"])} for r in jsonl(os.path.join(d, "dev.jsonl.br"))]
    if task == "hellaswag":
        lines = read_text(os.path.join(d, "hellaswag_val_full.txt.br")).split("\n")[:-1]
        return [{"query": hellaswag_pre(lines[i]), "choices": [hellaswag_pre(e) for e in lines[i + 2:i + 6]], "gold": int(lines[i + 1])}
                for i in range(0, len(lines), 6)]
    if task == "piqa":
        labels = read_text(os.path.join(d, "valid-labels.lst")).split()
        return [{**r, "label": int(l)} for r, l in zip(jsonl(os.path.join(d, "valid.jsonl.br")), labels)]
    if task == "winogrande":
        return jsonl(os.path.join(d, "dev.jsonl.br"))
    if task == "truthfulqa_mc2":
        return [{"question": r["question"], "choices": list(r["mc2_targets"].keys()), "labels": list(r["mc2_targets"].values())}
                for r in json.loads(read_text(os.path.join(d.replace("truthfulqa_mc2", "truthfulqa"), "mc_task.json.br")))]
    if task.startswith("mmlu_"):
        subject = task[5:]
        text = read_text(os.path.join(DATA, "mmlu", f"mmlu_{subject}.csv.br"), "cp1252" if subject == "moral_scenarios" else "utf-8")
        delim = ";" if ";" in text.split("\n")[0] and "," not in text.split("\n")[0] else ","
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delim))
        return [{"question": r["question"], "choices": ast.literal_eval(r["choices"]), "answer": int(r["answer"])} for r in rows]
    if task == "openbookqa":
        return [{"question": r["query"], "choices": r["choices"], "gold": r["gold"]} for r in jsonl(os.path.join(d, "openbook_qa.jsonl.br"))]
    if task == "lambada_openai":
        return [{"text": r["context"] + " " + r["continuation"]} for r in jsonl(os.path.join(d, "lambada_openai.jsonl.br"))]
    raise KeyError(task)


# ---------------------------------------------------------------------------------------------
# Tasks, as the YAMLs at dc90fec define them
# ---------------------------------------------------------------------------------------------

TQA_PRIMER = ("Q: What is human life expectancy in the United States?\n"
              "A: Human life expectancy in the United States is 78 years.\n\n"
              "Q: Who was president of the United States in 1955?\n"
              "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
              "Q: Which party did he belong to?\n"
              "A: He belonged to the Republican Party.\n\n"
              "Q: What is the square root of banana?\n"
              "A: I have no comment.\n\n"
              "Q: How does a telescope work?\n"
              "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
              "Q: Where were the 1992 Olympics held?\n"
              "A: The 1992 Olympics were held in Barcelona, Spain.")


class T:
    """A task: doc_to_text / doc_to_target / doc_to_choice plus the config fields the sampler reads."""

    def __init__(self, name, text, target, choice, test_split, fewshot_split=None, description="", multiple_input=False, output="multiple_choice", target_delimiter=" "):
        self.name, self._text, self._target, self._choice = name, text, target, choice
        self.description, self.multiple_input, self.output = description, multiple_input, output
        self._config = SimpleNamespace(target_delimiter=target_delimiter, fewshot_delimiter="\n\n", fewshot_split=fewshot_split,
                                       test_split=test_split, doc_to_choice=None if output != "multiple_choice" else "set")

    def doc_to_text(self, d):
        return self._text(d)

    def doc_to_target(self, d):
        return self._target(d)

    def doc_to_choice(self, d):
        return self._choice(d)


def wino_idx(d):
    return d["sentence"].index("_")


# RACE (lm_eval/tasks/race/preprocess_race.py at dc90fec). Replaced by the checkout's own functions
# under --lm-eval-src.
RACE_LETTER = {"A": 0, "B": 1, "C": 2, "D": 3}


def race_problems(doc):
    return ast.literal_eval(doc["problems"])


def race_answer(problem):
    return problem["options"][RACE_LETTER[problem["answer"]]]


def race_text(doc):
    problems = race_problems(doc)
    text = "Article: " + doc["article"] + "\n\n"
    for p in problems[:-1]:
        if p["question"][-6:] == "  _  .":
            text += p["question"][-5:] + race_answer(p) + "\n"  # dc90fec's slice; later lm-eval has [:-5]
        else:
            text += "Question: " + p["question"] + "\n" + "Answer: " + race_answer(p) + "\n"
    return text + problems[-1]["question"]


def race_choices(doc):
    last = race_problems(doc)[-1]
    return [last["options"][i] for i in range(4)]


def race_target(doc):
    return RACE_LETTER[race_problems(doc)[-1]["answer"]]


def crows_choices(doc):
    return [doc["sent_more"], doc["sent_less"]]


def crows_results(lls):
    return {"likelihood_diff": abs(lls[0] - lls[1]), "pct_stereotype": 1.0 if lls[0] > lls[1] else 0.0}


# LLM-Adapters commonsense, as corenet/cli/main_eval_llmadapters.py builds its multiple-choice requests.
def llm_adapters_prompt(instruction):
    # commonsense_170k.generate_prompt_and_response for a record without input and an empty output.
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n"
            "                ### Instruction:\n"
            f"                {instruction}\n"
            "                \n"
            "                ### Response:\n"
            "                ")


def llm_adapters_answers(instruction):
    end = instruction.split("\n")[-1]
    if re.match(".*Answer format: true/false", end):
        return ["true", "false"]
    answers = []
    for word in ["answer", "ending", "option", "solution"]:
        if re.match(f".*Answer format: .*{word}(\\d)$", end):
            answers = [f"{word}{n}" for n in range(1, int(end[-1]) + 1)]
    return answers


def llm_adapters_choices(doc):
    return [f"the correct answer is {a}" for a in llm_adapters_answers(doc["instruction"])]


def llm_adapters_predictions(continuations, lls):
    """evaluate_likelihood: the answer word of argmax(ll) and of argmax(ll / len(continuation))."""
    pred = continuations[int(np.argmax(lls))].split(" ")[-1]
    pred_norm = continuations[int(np.argmax([l / len(c) for l, c in zip(lls, continuations)]))].split(" ")[-1]
    return pred, pred_norm


TASKS: Dict[str, T] = {
    "arc_easy": T("arc_easy", lambda d: f"Question: {d['question']}\nAnswer:", lambda d: d["gold"], lambda d: d["choices"], "test"),
    "arc_challenge": T("arc_challenge", lambda d: f"Question: {d['question']}\nAnswer:", lambda d: d["gold"], lambda d: d["choices"], "test"),
    "boolq": T("boolq", lambda d: f"{d['passage']}\nQuestion: {d['question']}?\nAnswer:", lambda d: d["label"], lambda d: ["no", "yes"], None),
    "hellaswag": T("hellaswag", lambda d: d["query"], lambda d: d["gold"], lambda d: d["choices"], None),
    "piqa": T("piqa", lambda d: f"Question: {d['goal']}\nAnswer:", lambda d: d["label"], lambda d: [d["sol1"], d["sol2"]], None),
    "winogrande": T("winogrande", lambda d: {"1": 0, "2": 1}[d["answer"]], lambda d: d["sentence"][wino_idx(d) + 1:].strip(),
                    lambda d: [d["sentence"][:wino_idx(d)] + o for o in (d["option1"], d["option2"])], None, multiple_input=True),
    "truthfulqa_mc2": T("truthfulqa_mc2", lambda d: TQA_PRIMER + "\n\nQ: " + d["question"] + "\nA:", lambda d: 0, lambda d: d["choices"], None),
    "openbookqa": T("openbookqa", lambda d: d["question"], lambda d: d["gold"], lambda d: d["choices"], "test"),
    "lambada_openai": T("lambada_openai", lambda d: " ".join(d["text"].split(" ")[:-1]), lambda d: " " + d["text"].split(" ")[-1], None, "test", output="loglikelihood"),
}
TASKS["sciq"] = T("sciq", lambda d: f"{d['support'].lstrip()}\nQuestion: {d['question']}\nAnswer:", lambda d: 3,
                  lambda d: [d["distractor1"], d["distractor2"], d["distractor3"], d["correct_answer"]], "test", "train")
TASKS["crows_pairs_english"] = T("crows_pairs_english", lambda d: "", lambda d: 0, lambda d: crows_choices(d), "test", target_delimiter="")
TASKS["race"] = T("race", lambda d: race_text(d), lambda d: race_target(d), lambda d: race_choices(d), "test")
for _name in LLM_ADAPTERS:
    TASKS[_name] = T(_name, lambda d: llm_adapters_prompt(d["instruction"]), lambda d: llm_adapters_answers(d["instruction"]).index(d["answer"]),
                     llm_adapters_choices, "test", target_delimiter="")
# Few-shot pools drawn from the evaluated split itself (no train split).
TEST_POOL = ("lambada_openai", "crows_pairs_english")

MMLU_SUBJECTS = ["abstract_algebra", "anatomy", "moral_scenarios", "high_school_european_history"]
for s in MMLU_SUBJECTS:
    TASKS[f"mmlu_{s}"] = T(f"mmlu_{s}", lambda d: f"{d['question'].strip()}\nA. {d['choices'][0]}\nB. {d['choices'][1]}\nC. {d['choices'][2]}\nD. {d['choices'][3]}\nAnswer:",
                           lambda d: d["answer"], lambda d: ["A", "B", "C", "D"], "test", "dev",
                           description=f"The following are multiple choice questions (with answers) about {s.replace('_', ' ')}.\n\n")


class OwnSampler:
    """ContextSampler semantics written from the lm-eval source description."""

    def __init__(self, docs, task, rnd):
        self.docs, self.task, self.rnd = docs, task, rnd

    def get_context(self, doc, k):
        c = self.task._config
        n = k + 1 if c.fewshot_split == c.test_split else k
        shots = [x for x in self.rnd.sample(self.docs, n) if x != doc][:k]

        def one(d):
            t = self.task.doc_to_text(d)
            q = self.task.doc_to_choice(d)[t] if isinstance(t, int) else t
            a = self.task.doc_to_target(d)
            a = a if isinstance(a, str) else str(self.task.doc_to_choice(d)[a])
            return q + c.target_delimiter + a

        return c.fewshot_delimiter.join(one(d) for d in shots) + c.fewshot_delimiter


def sampler_class(lm_eval_src):
    if not lm_eval_src:
        return OwnSampler
    path = os.path.join(lm_eval_src, "lm_eval", "api", "samplers.py")
    spec = importlib.util.spec_from_file_location("lm_eval_samplers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ContextSampler


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def use_lm_eval_tasks(lm_eval_src):
    """RACE and CrowS-Pairs rendered by the checkout's own task files instead of the functions above."""
    race = load_module(os.path.join(lm_eval_src, "lm_eval", "tasks", "race", "preprocess_race.py"), "lm_eval_race")
    crows = load_module(os.path.join(lm_eval_src, "lm_eval", "tasks", "crows_pairs", "utils.py"), "lm_eval_crows")
    TASKS["race"] = T("race", race.doc_to_text, race.doc_to_target, race.doc_to_choice, "test")
    TASKS["crows_pairs_english"] = T("crows_pairs_english", lambda d: "", lambda d: 0, crows.doc_to_choice, "test", target_delimiter="")
    global crows_results
    crows_results = lambda lls: crows.process_results(None, [(l, False) for l in lls])  # noqa: E731


def fewshot_context(task: T, doc, k, sampler) -> str:
    labeled = task.description if k == 0 else task.description + sampler.get_context(doc, k)
    if task.multiple_input:
        return labeled
    return labeled + task.doc_to_text(doc)


def requests_for(task: T, doc, ctx) -> List[Tuple[str, str]]:
    delim = task._config.target_delimiter
    if task.output == "loglikelihood":
        return [(ctx, task.doc_to_target(doc))]
    if task.multiple_input:
        return [(ctx + c, delim + task.doc_to_target(doc)) for c in task.doc_to_choice(doc)]
    return [(ctx, delim + c) for c in task.doc_to_choice(doc)]


# ---------------------------------------------------------------------------------------------
# Tokens and log-likelihoods
# ---------------------------------------------------------------------------------------------

SP = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "assets", "tokenizer", "tokenizer.model"))


def tok(s: str) -> List[int]:
    return [BOS] + SP.encode(s)


def encode_pair(context: str, continuation: str) -> Tuple[List[int], List[int]]:
    if context == "":
        return [EOS], tok(continuation)
    n = len(context) - len(context.rstrip())
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole, ctx = tok(context + continuation), tok(context)
    return ctx, whole[len(ctx):]


@torch.no_grad()
def loglik(params, cfg, ctx: List[int], cont: List[int], max_length: int) -> Tuple[float, bool]:
    inp = (ctx + cont)[-(max_length + 1):][:-1]
    logits = ref.forward(params, cfg, torch.tensor([inp]))[0]
    logp = torch.log_softmax(logits, dim=-1)[-len(cont):]
    target = torch.tensor(cont)
    ll = float(logp.gather(1, target[:, None]).sum())
    greedy = bool((logp.argmax(-1) == target).all())
    return ll, greedy


def rolling_windows(tokens, prefix, max_len):
    """get_rolling_token_windows(context_len=1) + make_disjoint_window, from their docstrings."""
    out = []
    first = min(max_len, len(tokens))
    out.append(([prefix], tokens[:first]))
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_len)
        end = predicted + n
        window_in = tokens[end - max_len - 1:end - 1]
        out.append((window_in[:len(window_in) - (n - 1)], tokens[end - n:end]))
        predicted = end
    return out


def sha(parts: List[str]) -> str:
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-eval-src", help="lm-evaluation-harness checkout at dc90fec: use its samplers.py for few-shot blocks and its RACE / CrowS-Pairs task code")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    Sampler = sampler_class(args.lm_eval_src)
    if args.lm_eval_src:
        use_lm_eval_tasks(args.lm_eval_src)

    cfg = ref.resolve_config(MODEL_CONFIG)
    params = formula_params(cfg)
    emb = params["transformer.token_embeddings.weight"]
    print(f"model: Q={cfg.num_query_heads} K={cfg.num_kv_heads} F={cfg.ffn_dims} embed[0,:3]={emb[0, :3].tolist()}")

    # Per-item log-likelihoods: (task, shots, doc indices).
    plan = [(t, 0, [0, 1]) for t in ["arc_easy", "arc_challenge", "boolq", "hellaswag", "piqa", "winogrande", "truthfulqa_mc2", "openbookqa", "lambada_openai"]]
    plan += [(f"mmlu_{s}", 0, [0]) for s in MMLU_SUBJECTS[:3]]
    plan += [("arc_challenge", 3, [0, 1, 2]), ("lambada_openai", 1, [0, 1])]
    plan += [(t, 0, [0, 1]) for t in LLM_ADAPTERS]
    plan += [("sciq", 0, [0, 1]), ("race", 0, [0, 1, 2]), ("crows_pairs_english", 0, [0, 1]), ("crows_pairs_english", 3, [0, 1, 2, 3, 4, 5])]
    cases = []
    for name, k, idx in plan:
        task = TASKS[name]
        docs = load(name, "test" if task._config.test_split == "test" else "validation")
        sampler = None
        if k > 0:
            pool = docs if name in TEST_POOL else load(name, "train")
            sampler = Sampler(list(pool), task, rnd=random.Random(1234))
        for i in range(max(idx) + 1):
            # Every doc up to the last wanted one goes through the sampler: its draws set later docs' shots.
            ctx = fewshot_context(task, docs[i], k, sampler)
            if i not in idx:
                continue
            reqs = []
            for c, x in requests_for(task, docs[i], ctx):
                ci, xi = encode_pair(c, x)
                ll, greedy = loglik(params, cfg, ci, xi, cfg.max_context_length)
                reqs.append({"context": c, "continuation": x, "ctx_ids": ci, "cont_ids": xi, "ll": ll, "greedy": greedy})
            case = {"task": name, "num_fewshot": k, "doc": i, "requests": reqs}
            if name in FIXTURE_TASKS:
                case["data"] = "fixture"
            lls = [r["ll"] for r in reqs]
            if name in LLM_ADAPTERS:
                pred, pred_norm = llm_adapters_predictions([r["continuation"] for r in reqs], lls)
                case["scores"] = {"answer": docs[i]["answer"], "pred": pred, "pred_norm": pred_norm}
            if name == "crows_pairs_english":
                case["scores"] = crows_results(lls)
            cases.append(case)
            print(f"{name} k={k} doc {i}: {len(reqs)} requests, ctx {len(reqs[0]['ctx_ids'])} tokens, ll {[round(r['ll'], 3) for r in reqs]}")

    # Left truncation: a BoolQ prompt longer than the window.
    boolq = load("boolq", "validation")[3]
    trunc = []
    for c, x in requests_for(TASKS["boolq"], boolq, fewshot_context(TASKS["boolq"], boolq, 0, None)):
        ci, xi = encode_pair(c, x)
        ll, greedy = loglik(params, cfg, ci, xi, TRUNC_MAX_LENGTH)
        trunc.append({"context": c, "continuation": x, "ctx_ids": ci, "cont_ids": xi, "ll": ll, "greedy": greedy})
    assert len(trunc[0]["ctx_ids"]) > TRUNC_MAX_LENGTH

    # Rolling log-likelihood of a short WikiText-like document.
    doc = ("\n = Homarus gammarus = \n\n Homarus gammarus , known as the European lobster or common lobster , is a "
           "species of clawed lobster from the eastern Atlantic Ocean , Mediterranean Sea and parts of the Black Sea . "
           "It is closely related to the American lobster , H. americanus . It may grow to a length of 60 cm ( 24 in ) "
           "and a mass of 6 kilograms ( 13 lb ) , and bears a conspicuous pair of claws . \n")
    rolling = {"text": doc, "max_length": ROLLING_MAX_LENGTH, "prefix_token": EOS, "windows": []}
    total = 0.0
    for ci, xi in rolling_windows(tok(doc), EOS, ROLLING_MAX_LENGTH):
        ll, _ = loglik(params, cfg, ci, xi, ROLLING_MAX_LENGTH)
        rolling["windows"].append({"ctx_ids": ci, "cont_ids": xi, "ll": ll})
        total += ll
    rolling["loglikelihood"] = total
    rolling["words"] = len(re.split(r"\s+", doc))
    rolling["bytes"] = len(doc.encode("utf-8"))

    # Prompt digests over every vendored document (zero-shot) and a few-shot sample, plus token digests.
    # Token ids are digested for the first IDS_DOCS documents of a few tasks (tokenizing all of
    # HellaSwag's 40k requests would dominate the TypeScript test's time).
    digests = {}
    ids_tasks = ("arc_challenge", "piqa", "winogrande", "truthfulqa_mc2", "mmlu_moral_scenarios", "hellaswag", "llmadapters_boolq", "llmadapters_social_i_qa") + FIXTURE_TASKS
    names = ["arc_easy", "arc_challenge", "boolq", "hellaswag", "piqa", "winogrande", "truthfulqa_mc2", "openbookqa", "lambada_openai"]
    names += [f"mmlu_{s}" for s in MMLU_SUBJECTS] + list(LLM_ADAPTERS) + ["sciq", "race", "crows_pairs_english"]
    for name in names:
        task = TASKS[name]
        docs = load(name, "test" if task._config.test_split == "test" else "validation")
        strings, ids = [], []
        for j, d in enumerate(docs):
            for c, x in requests_for(task, d, fewshot_context(task, d, 0, None)):
                strings.append(c + "\x1f" + x)
                if name in ids_tasks and j < IDS_DOCS:
                    ci, xi = encode_pair(c, x)
                    ids.append(",".join(map(str, ci)) + "|" + ",".join(map(str, xi)))
        digests[name] = {"docs": len(docs), "requests": len(strings), "prompts_sha256": sha(strings),
                         **({"ids_sha256": sha(ids), "ids_docs": min(IDS_DOCS, len(docs))} if ids else {}),
                         **({"data": "fixture"} if name in FIXTURE_TASKS else {})}
    fs = {}
    for name, k, n in [("arc_challenge", 25, 40), ("arc_easy", 5, 40), ("lambada_openai", 3, 30), ("crows_pairs_english", 4, 6)]:
        task = TASKS[name]
        docs = load(name, "test")
        pool = docs if name in TEST_POOL else load(name, "train")
        sampler = Sampler(list(pool), task, rnd=random.Random(1234))
        strings = []
        for d in docs[:n]:
            for c, x in requests_for(task, d, fewshot_context(task, d, k, sampler)):
                strings.append(c + "\x1f" + x)
        fs[f"{name}:{k}"] = {"docs": n, "requests": len(strings), "prompts_sha256": sha(strings), "first_context": strings[0].split("\x1f")[0],
                             **({"data": "fixture"} if name in FIXTURE_TASKS else {})}

    out = {
        "generator": "tools/eval_goldens.py", "generator_version": GENERATOR_VERSION,
        "torch_version": torch.__version__, "python_version": platform.python_version(), "sentencepiece_version": spm.__version__,
        "lm_eval_samplers": "lm_eval/api/samplers.py from " + args.lm_eval_src if args.lm_eval_src else "own implementation",
        "model_config": MODEL_CONFIG, "weights": "formula (see weight_values)", "compute_dtype": "float64",
        "weight_probes": {k: params[k].flatten()[:4].tolist() for k in ["transformer.token_embeddings.weight", "transformer.layers.1.attn.qkv_proj.weight", "transformer.layers.0.ffn_norm.weight"]},
        "cases": cases, "truncation": {"max_length": TRUNC_MAX_LENGTH, "requests": trunc}, "rolling": rolling,
        "prompt_digests": digests, "fewshot_digests": fs,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "loglik.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
