#!/usr/bin/env python3
"""Reference gradients from PyTorch autograd on openai-whisper, for Auscult's backward pass.

  .venv-bench/bin/python Tests/Fixtures/reference/make_gradient_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-tiny.en with `auscult convert`)

tiny.en, fp32, the jfk clip zero-padded to 30 s before the log-mel, teacher-forced on the prompt
and openai-whisper's greedy transcript with end-of-text appended. The metric is the mean
cross-entropy of every token after the prompt (position p predicts token p + 1, from the prompt's
last position on): `GradientMetric.crossEntropy()`. Writes tiny.en/gradients_jfk.safetensors:

- `audio.hook_mel`: d CE / d log-mel, every 5th of the 3000 mel frames (`[80, 600]`);
- `encoder.blocks.L.hook_resid_post`: every 5th of the 1500 frames (`[300, 384]`);
- `decoder.blocks.L.hook_resid_pre`: every position (`[T, 384]`);
- metadata: `tokens` (JSON) and `ce` (the metric's value).

Every 5th frame keeps the file at 2 MB while covering the audio and the padding alike.
"""
import json, os, sys, wave
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir  # noqa: E402
import whisper  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    model = openai_model(hf_dir("tiny.en")).float().eval()
    with wave.open(os.path.join(ROOT, "data/clips/jfk.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    audio = whisper.pad_or_trim(torch.from_numpy(samples))
    mel = whisper.log_mel_spectrogram(audio).unsqueeze(0).requires_grad_(True)
    ref = next(json.loads(l) for l in open(os.path.join(HERE, "tiny.en/transcripts.jsonl")) if json.loads(l)["id"] == "jfk")
    prompt = [50257, 50362]
    tokens = prompt + ref["tokens"] + [50256]  # end-of-text appended: the last target
    saved = {}

    def keep(name):
        def hook(_module, args, output=None):
            t = output if output is not None else args[0]
            t.retain_grad()
            saved[name] = t
        return hook

    for i, b in enumerate(model.encoder.blocks):
        b.register_forward_hook(keep(f"encoder.blocks.{i}.hook_resid_post"))
    for i, b in enumerate(model.decoder.blocks):
        b.register_forward_pre_hook(keep(f"decoder.blocks.{i}.hook_resid_pre"))
    features = model.encoder(mel)
    logits = model.decoder(torch.tensor([tokens]), features)[0]
    start = len(prompt) - 1
    ce = F.cross_entropy(logits[start:-1], torch.tensor(tokens[start + 1:]))
    ce.backward()
    out = {"audio.hook_mel": mel.grad[0, :, ::5].contiguous()}
    for name, t in saved.items():
        g = t.grad[0]
        out[name] = (g[::5] if name.startswith("encoder") else g).contiguous()
    out = {k: v.detach().float() for k, v in out.items()}
    meta = {"tokens": json.dumps(tokens), "ce": repr(ce.item()), "model": "tiny.en", "clip": "jfk"}
    save_file(out, os.path.join(HERE, "tiny.en/gradients_jfk.safetensors"), metadata=meta)
    print(f"ce {ce.item():.6f}; " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
