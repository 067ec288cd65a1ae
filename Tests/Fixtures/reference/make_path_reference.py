#!/usr/bin/env python3
"""`auscult paths` on one clip computed with PyTorch on openai-whisper, for Auscult's PathAnalysis.

  .venv-bench/bin/python Tests/Fixtures/reference/make_path_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-tiny.en with `auscult convert`)

tiny.en, fp32, the jfk clip (pad_or_trim before the log-mel), openai-whisper's greedy transcript
teacher-forced as prompt + text + end-of-text. Written out again from docs/paths.md:

- per-token cross-entropy of the text and end-of-text under: the clean run; the decoder reading
  the encoder output of 30 s of silence; every decoder block's cross-attention output zeroed
  (forward hooks returning zeros);
- on the clean run, each component's output (token embedding, positional embedding, then per block
  the self-attention, cross-attention and MLP outputs, captured by forward hooks) through the final
  LayerNorm's centring and scale σ = sqrt(var + 1e-5) of the whole stream, dotted with
  γ ⊙ (u_target − Σ_v p_v u_v) (the "direct" contribution) and with γ ⊙ u_target (the raw logit's);
- path patching: each block's self-attention, cross-attention and MLP output replaced by its value
  on the silence run (same tokens), as the change in each token's loss; "patch_total" with the
  whole model after it seeing the replacement (a forward hook returning the silence output),
  "patch_direct" with only the final LayerNorm and the logits seeing it (the stream x − c + c',
  LayerNorm recomputed, against the read-out of x).

Writes tiny.en/paths_jfk.json beside this file.
"""
import json, os, sys
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchmark import openai_model, hf_dir, load_audio  # noqa: E402
import whisper  # noqa: E402
from whisper.tokenizer import get_tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run(model, mel, tokens, capture=False, cross_off=False, patch=None):
    outputs, hooks = [], []
    dec = model.decoder
    if patch is not None:
        index, value = patch
        module = [m for b in dec.blocks for m in (b.attn, b.cross_attn, b.mlp)][index]
        value = value.float().unsqueeze(0)
        if index % 3 == 2:
            hooks.append(module.register_forward_hook(lambda m, i, o: value))
        else:
            hooks.append(module.register_forward_hook(lambda m, i, o: (value,) + tuple(o[1:])))
    if capture:
        for b in dec.blocks:
            hooks.append(b.attn.register_forward_hook(lambda m, i, o: outputs.append(o[0][0].double())))
            hooks.append(b.cross_attn.register_forward_hook(lambda m, i, o: outputs.append(o[0][0].double())))
            hooks.append(b.mlp.register_forward_hook(lambda m, i, o: outputs.append(o[0].double())))
    if cross_off:
        for b in dec.blocks:
            hooks.append(b.cross_attn.register_forward_hook(lambda m, i, o: (torch.zeros_like(o[0]),) + tuple(o[1:])))
    resid = {}
    hooks.append(dec.ln.register_forward_hook(lambda m, i, o: resid.__setitem__("x", i[0][0].double())))
    with torch.no_grad():
        logits = dec(torch.tensor([tokens]), model.encoder(mel.unsqueeze(0)))[0].double()
    for h in hooks:
        h.remove()
    return logits, outputs, resid.get("x")


def losses(logits, tokens, start):
    lp = torch.log_softmax(logits, dim=-1)
    return [float(-lp[p, tokens[p + 1]]) for p in range(start - 1, len(tokens) - 1)]


def main():
    model = openai_model(hf_dir("tiny.en")).float().eval()
    whisper.model.MultiHeadAttention.use_sdpa = False
    tok = get_tokenizer(False)
    prompt = list(tok.sot_sequence_including_notimestamps)
    audio = load_audio(os.path.join(ROOT, "data/clips/jfk.wav"))
    mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(audio)), model.dims.n_mels)
    silence = whisper.log_mel_spectrogram(torch.zeros(480000), model.dims.n_mels)
    with torch.no_grad():
        res = whisper.decode(model, mel, whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False))
    tokens = prompt + list(res.tokens) + [tok.eot]
    start = len(prompt)
    logits, outs, x = run(model, mel, tokens, capture=True)
    out = {"tokens": tokens, "losses": {
        "clean": losses(logits, tokens, start),
        "no audio (silence)": losses(run(model, silence, tokens)[0], tokens, start),
        "no cross-attention": losses(run(model, mel, tokens, cross_off=True)[0], tokens, start),
    }}
    sd = {k: v.double() for k, v in model.state_dict().items()}
    E, gamma, beta = sd["decoder.token_embedding.weight"], sd["decoder.ln.weight"], sd["decoder.ln.bias"]
    T = len(tokens)
    comps = [E[torch.tensor(tokens)], sd["decoder.positional_embedding"][:T]] + outs
    assert torch.allclose(sum(comps), x, atol=1e-3), "the components do not add up to the stream"
    sigma = torch.sqrt(x.var(dim=-1, unbiased=False) + 1e-5)
    rows = list(range(start - 1, T - 1))
    targets = [tokens[p + 1] for p in rows]
    p = torch.softmax(logits[rows], dim=-1)
    directions = E[torch.tensor(targets)] - p @ E
    direct, raw = [], []
    for c in comps:
        n = (c - c.mean(dim=-1, keepdim=True)) / sigma[:, None]
        direct.append([float((n[r] * gamma * directions[k]).sum()) for k, r in enumerate(rows)])
        raw.append([float((n[r] * gamma * E[targets[k]]).sum()) for k, r in enumerate(rows)])
    out["direct"], out["direct_logit"] = direct, raw
    centred = [float(logits[r, targets[k]] - (p[k] * logits[r]).sum()) for k, r in enumerate(rows)]
    out["centred"] = centred
    out["bias"] = [float((beta * directions[k]).sum()) for k in range(len(rows))]
    _, silence_outs, _ = run(model, silence, tokens, capture=True)
    clean = out["losses"]["clean"]

    def read_out(stream):
        y = torch.nn.functional.layer_norm(stream, (stream.shape[-1],), gamma, beta, 1e-5)
        lp = torch.log_softmax(y @ E.T, dim=-1)
        return [float(-lp[r, targets[k]]) for k, r in enumerate(rows)]

    base = read_out(x)
    total, direct_path = [], []
    for i, (c, s) in enumerate(zip(outs, silence_outs)):
        patched = losses(run(model, mel, tokens, patch=(i, s))[0], tokens, start)
        total.append([a - b for a, b in zip(patched, clean)])
        direct_path.append([a - b for a, b in zip(read_out(x - c + s), base)])
    out["patch_total"], out["patch_direct"] = total, direct_path
    path = os.path.join(HERE, "tiny.en", "paths_jfk.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
