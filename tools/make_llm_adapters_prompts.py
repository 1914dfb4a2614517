"""Write test/fixtures/llm-adapters/prompts.json: records and the prompts CoreNet renders for them.

CoreNet's own function is run, not a copy: `generate_prompt_and_response` is taken out of
corenet/data/datasets/language_modeling/commonsense_170k.py (from an apple/corenet checkout, whose
other imports need not be installed) and applied to a few records of data/llm-adapters-commonsense
plus two made-up ones that exercise the template's `input` branch and non-ASCII text.

Usage: python tools/make_llm_adapters_prompts.py --corenet-file /path/to/corenet/.../commonsense_170k.py
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def corenet_function(path: str):
    tree = ast.parse(open(path, encoding="utf-8").read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate_prompt_and_response")
    ns: dict = {"Dict": dict}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), ns)
    return ns["generate_prompt_and_response"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corenet-file", required=True)
    args = ap.parse_args()
    gen = corenet_function(args.corenet_file)
    records = []
    for name in ("boolq", "ARC-Challenge", "openbookqa"):
        with gzip.open(os.path.join(ROOT, "data", "llm-adapters-commonsense", f"{name}.train.json.gz"), "rt", encoding="utf-8") as f:
            records.append(json.load(f)[0])
    records.append({"instruction": "Translate to French.", "input": "The café is open.", "output": "Le café est ouvert.", "answer": ""})
    records.append({"instruction": "Multi-line\ninstruction", "input": "x\ny", "output": "", "answer": ""})
    out = [{"record": r, "prompt": gen(r)} for r in records]
    d = os.path.join(ROOT, "test", "fixtures", "llm-adapters")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump({"source": "apple/corenet corenet/data/datasets/language_modeling/commonsense_170k.py generate_prompt_and_response",
                   "items": out}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
