#!/usr/bin/env python3
"""Word timing reference from openai-whisper's `timing.find_alignment` (cross-attention of the
alignment heads, normalised, median-filtered, DTW), for Auscult's word timing.

  .venv-bench/bin/python Tests/Fixtures/reference/make_word_timing_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-tiny.en with `auscult convert`)

tiny.en, the CLIPS below, text tokens from openai-whisper's greedy decode (no timestamps).
Writes words.jsonl beside this file: {"clip", "tokens", "num_frames", "words": [{"word", "tokens",
"start", "end"}]} with times in seconds as find_alignment returns them (before the display
adjustments of transcribe's word_timestamps).
"""
import json, os, sys
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir, load_audio  # noqa: E402
import whisper  # noqa: E402
from whisper.timing import find_alignment  # noqa: E402
from whisper.tokenizer import get_tokenizer  # noqa: E402

CLIPS = ["jfk", "ls_1089-134686-0000", "ps_cards_003", "lj_LJ002-0020"]

if __name__ == "__main__":
    model = openai_model(hf_dir("tiny.en"))
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    tok = get_tokenizer(False)
    out = []
    for clip in CLIPS:
        audio = load_audio(os.path.join(ROOT, "data/clips", clip + ".wav"))
        mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(audio)), model.dims.n_mels)
        with torch.no_grad():
            r = whisper.decode(model, mel, whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False))
        num_frames = len(audio) // 160
        words = find_alignment(model, tok, r.tokens, mel, min(num_frames, 3000))
        out.append({"clip": clip, "tokens": r.tokens, "num_frames": min(num_frames, 3000),
                    "words": [{"word": w.word, "tokens": w.tokens, "start": float(w.start), "end": float(w.end)} for w in words]})
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "words.jsonl"), "w") as f:
        for r in out: f.write(json.dumps(r) + "\n")
    print("wrote", len(out), "clips")
