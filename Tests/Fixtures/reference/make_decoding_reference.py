#!/usr/bin/env python3
"""Reference tokens for decoding modes beyond greedy, from openai-whisper with the same weights.

  .venv-bench/bin/python Tests/Fixtures/reference/make_decoding_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-<model> with `auscult convert`)

For tiny.en and base, on CLIPS: beam search (beam_size 5), greedy with timestamps, and (base)
language detection with language=None. One padded 30 s window each, fp32, as the main reference.
Writes decoding.jsonl beside this file: {"model","id","mode","tokens","language"}.
"""
import json, os, sys
import numpy as np, soundfile as sf, torch, whisper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir  # noqa: E402

CLIPS = ["jfk", "ls_1089-134686-0000", "ls_1272-141231-0002", "ami_ES2011a_40-46s", "ps_cards_003",
         "lj_LJ002-0020", "tts_05_flite_rms", "pae_counting"]
out = []
for model_name in ["tiny.en", "base"]:
    model = openai_model(hf_dir(model_name))
    for cid in CLIPS:
        a, sr = sf.read(os.path.join(ROOT, "data/clips", cid + ".wav"), dtype="int16")
        mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(a.astype(np.float32) / 32768.0)), model.dims.n_mels)
        modes = {
            "beam5": dict(language="en", without_timestamps=True, beam_size=5),
            "timestamps": dict(language="en", without_timestamps=False),
        }
        if model_name == "base":
            modes["detect"] = dict(language=None, without_timestamps=True)
        for mode, kw in modes.items():
            r = whisper.decode(model, mel, whisper.DecodingOptions(task="transcribe", temperature=0.0, fp16=False, **kw))
            out.append({"model": model_name, "id": cid, "mode": mode, "tokens": r.tokens, "language": r.language,
                        "text": r.text})
            print(model_name, cid, mode, r.text[:60])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "decoding.jsonl"), "w") as f:
    for r in out:
        f.write(json.dumps(r) + "\n")
