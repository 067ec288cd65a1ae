#!/usr/bin/env python3
"""Long-form reference: openai-whisper `transcribe()` on a 47 s file made of four bundled clips.

  .venv-bench/bin/python Tests/Fixtures/longform/make_longform_reference.py

Writes long.wav (jfk + ls_1089-134686-0000 + lj_LJ002-0020 + ls_1272-141231-0002, 16 kHz int16:
public domain and CC BY 4.0 LibriSpeech, see data/clips/LICENSES.md), transcribe.jsonl with
each model's segments (default transcribe settings, language "en", fp16 off), and words.jsonl with
the same run with word_timestamps=True (the model's alignment heads from whisper._ALIGNMENT_HEADS):
segments with their words, times and probabilities.
"""
import json, os, sys
import numpy as np, soundfile as sf, torch, whisper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir  # noqa: E402

parts = [sf.read(os.path.join(ROOT, "data/clips", c + ".wav"), dtype="int16")[0]
         for c in ["jfk", "ls_1089-134686-0000", "lj_LJ002-0020", "ls_1272-141231-0002"]]
audio16 = np.concatenate(parts)
sf.write(os.path.join(HERE, "long.wav"), audio16, 16000, subtype="PCM_16")
audio = audio16.astype(np.float32) / 32768.0
with open(os.path.join(HERE, "transcribe.jsonl"), "w") as f:
    for name in ["tiny.en", "base"]:
        r = whisper.transcribe(openai_model(hf_dir(name)), audio, language="en", fp16=False)
        segs = [{"seek": s["seek"], "start": s["start"], "end": s["end"], "text": s["text"], "tokens": s["tokens"],
                 "temperature": s["temperature"]} for s in r["segments"]]
        f.write(json.dumps({"model": name, "text": r["text"], "segments": segs}) + "\n")
        print(name, len(audio) / 16000, "s:", r["text"])
with open(os.path.join(HERE, "words.jsonl"), "w") as f:
    for name in ["tiny.en", "base"]:
        model = openai_model(hf_dir(name))
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
        r = whisper.transcribe(model, audio, language="en", fp16=False, word_timestamps=True)
        segs = [{"seek": s["seek"], "start": s["start"], "end": s["end"], "text": s["text"], "tokens": s["tokens"],
                 "words": [{"word": w["word"], "start": w["start"], "end": w["end"],
                            "probability": w["probability"]} for w in s["words"]]} for s in r["segments"]]
        f.write(json.dumps({"model": name, "text": r["text"], "segments": segs}) + "\n")
        print(name, "words:", sum(len(s["words"]) for s in segs))
