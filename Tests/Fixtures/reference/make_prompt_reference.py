#!/usr/bin/env python3
"""Transcripts with a prompt and a prefix from openai-whisper's `decode`, for Auscult's --prompt
and --prefix.

  .venv-bench/bin/python Tests/Fixtures/reference/make_prompt_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-MODEL with `auscult convert`)

Greedy, fp32, no timestamps, one 30 s window (pad_or_trim before the log-mel), language "en".
Prompts and prefixes are given as text: openai-whisper encodes them as " " + text.strip().
Writes prompts.jsonl beside this file: {"model", "clip", "prompt", "prefix", "tokens", "text"}.
"""
import json, os, sys
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir, load_audio  # noqa: E402
import whisper  # noqa: E402

CASES = [
    ("tiny.en", "jfk", "President Kennedy's inaugural address, 1961.", None),
    ("tiny.en", "jfk", None, "And so my fellow Americans"),
    ("tiny.en", "jfk", "Ask not.", "So"),
    ("tiny.en", "ps_cards_003", "Cards: hearts, spades, clubs.", None),
    ("tiny.en", "ls_1089-134686-0000", None, "He hoped"),
    ("base", "jfk", "Kennedy.", "And so"),
]

if __name__ == "__main__":
    out = []
    models = {}
    for model_name, clip, prompt, prefix in CASES:
        if model_name not in models:
            models[model_name] = openai_model(hf_dir(model_name)).float().eval()
        model = models[model_name]
        audio = load_audio(os.path.join(ROOT, "data/clips", clip + ".wav"))
        mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(audio)), model.dims.n_mels)
        opts = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, prompt=prompt, prefix=prefix)
        with torch.no_grad():
            r = whisper.decode(model, mel, opts)
        out.append({"model": model_name, "clip": clip, "prompt": prompt, "prefix": prefix, "tokens": r.tokens,
                    "text": r.text})
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts.jsonl"), "w") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")
    print("wrote", len(out), "cases")
