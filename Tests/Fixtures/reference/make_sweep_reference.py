#!/usr/bin/env python3
"""Reference ablation sweep from openai-whisper with PyTorch forward hooks, for Auscult's sweep.

  .venv-bench/bin/python Tests/Fixtures/reference/make_sweep_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-tiny.en with `auscult convert`)

tiny.en, the CLIPS below, every encoder block and every decoder block skipped and swapped (one
donor), done the plain way by scripts/sweep_torch.py. Writes sweep.jsonl beside this file:
{"clip","condition","donor","tokens","ce"}.
"""
import json, os, sys
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir  # noqa: E402
from sweep_torch import plain_sweep  # noqa: E402

CLIPS = ["jfk", "ls_1089-134686-0001", "ls_1089-134691-0000", "ps_cards_003"]

if __name__ == "__main__":
    with torch.no_grad():
        out = plain_sweep(openai_model(hf_dir("tiny.en")), CLIPS)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.jsonl"), "w") as f:
        for r in out: f.write(json.dumps(r) + "\n")
