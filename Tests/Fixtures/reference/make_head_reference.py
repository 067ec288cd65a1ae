#!/usr/bin/env python3
"""Head scores of `auscult heads` computed with PyTorch on openai-whisper, for Auscult's HeadScan.

  .venv-bench/bin/python Tests/Fixtures/reference/make_head_reference.py
  (after scripts/benchmark.sh has made .venv-bench and models/.hf-tiny.en with `auscult convert`)

tiny.en, fp32, attention patterns as softmax of the `qk` openai-whisper's MultiHeadAttention returns
with SDPA off. Every definition is written out here again from docs/heads.md, independently of
the Swift code:

- decoder self-attention on random tokens repeated twice (prompt + r + r, r = 25 tokens drawn by
  SplitMix64 seeded with the sequence index, `next() % eot`), on 30 s of silence:
  TransformerLens's previous-token, duplicate-token and induction detection patterns and its
  "mul" similarity (no exclusions), and Olsson et al.'s prefix matching; mean over 2 sequences;
- the copying score: Σ Re λ / Σ |λ| over the eigenvalues (torch.linalg.eigvals, float64) of
  W_O,hᵀ · P · Γ_f · EᵀE · P · Γ₁ · W_V,hᵀ;
- on the jfk clip with openai-whisper's greedy transcript (teacher-forced with end-of-text):
  encoder previous-frame, half-mass band width, ±5-frame share, padding share, frame-0 share over
  the 550 frames holding audio; the decoder scores on the transcript; cross-attention
  monotonicity (Spearman ρ of position and argmax frame, average ranks for ties); and each cross-attention head's
  own word timing from whisper.timing.find_alignment with that head as the only alignment head.

Writes tiny.en/heads_jfk.json beside this file.
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

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)


def patterns(model, mel, tokens):
    """Softmaxed attention patterns {(kind, layer): [heads, q, k]} of one teacher-forced run."""
    whisper.model.MultiHeadAttention.use_sdpa = False
    store, hooks = {}, []
    for kind, blocks, attr in [("enc", model.encoder.blocks, "attn"), ("self", model.decoder.blocks, "attn"),
                               ("cross", model.decoder.blocks, "cross_attn")]:
        for i, b in enumerate(blocks):
            def hook(_m, _inp, out, key=(kind, i)):
                store[key] = torch.softmax(out[1].float(), dim=-1)[0].numpy().astype(np.float64)
            hooks.append(getattr(b, attr).register_forward_hook(hook))
    with torch.no_grad():
        model.decoder(torch.tensor([tokens]), model.encoder(mel.unsqueeze(0)))
    for h in hooks:
        h.remove()
    return store


def detection(tokens):
    n = len(tokens)
    prev = np.zeros((n, n)); prev[np.arange(1, n), np.arange(n - 1)] = 1
    t = np.array(tokens)
    dup = np.tril((t[:, None] == t[None, :]).astype(float), -1)
    ind = np.zeros((n, n)); ind[:, 1:] = dup[:, :-1]; ind = np.tril(ind)
    return prev, dup, ind


def ranks(v):
    v = np.asarray(v, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None  # undefined for a constant side (Auscult: nil)
    return float(np.corrcoef(rx, ry)[0, 1])


def mul(p, d):
    return float((p * d).sum() / p.sum())


def encoder_stats(p, a):
    f = p.shape[0]
    prev = np.mean([p[i, i - 1] for i in range(1, a)])
    widths, local = [], []
    for i in range(a):
        w = 0
        while p[i, max(0, i - w):min(f, i + w + 1)].sum() < 0.5:
            w += 1
        widths.append(w)
        local.append(p[i, max(0, i - 5):min(f, i + 6)].sum())
    return {"previous_frame": prev, "band_width": float(np.median(widths)), "local_share": float(np.mean(local)),
            "padding_share": float(p[:a, a:].sum(axis=1).mean()), "first_frame_share": float(p[:a, 0].mean())}


def main():
    model = openai_model(hf_dir("tiny.en")).float().eval()
    tok = get_tokenizer(False)
    dims = model.dims
    prompt = list(tok.sot_sequence_including_notimestamps)
    silence = whisper.log_mel_spectrogram(torch.zeros(480000), dims.n_mels)
    out = {"model": "tiny.en", "prompt": prompt, "random": [], "scores": {}}

    # Decoder self-attention on random tokens repeated twice.
    acc = {k: np.zeros((dims.n_text_layer, dims.n_text_head)) for k in
           ["previous_token", "duplicate_token", "induction", "prefix_matching"]}
    L, S = 25, 2
    for s in range(S):
        g = SplitMix64(s)
        r = [g.next() % tok.eot for _ in range(L)]
        tokens = prompt + r + r
        out["random"].append(tokens)
        pats = patterns(model, silence, tokens)
        prev, dup, ind = detection(tokens)
        start = len(prompt)
        for l in range(dims.n_text_layer):
            for h in range(dims.n_text_head):
                p = pats[("self", l)][h]
                acc["previous_token"][l, h] += mul(p, prev) / S
                acc["duplicate_token"][l, h] += mul(p, dup) / S
                acc["induction"][l, h] += mul(p, ind) / S
                acc["prefix_matching"][l, h] += np.mean([p[i, i - L + 1] for i in range(start + L, start + 2 * L)]) / S
    for k, v in acc.items():
        out["scores"][k] = v.tolist()

    # Copying scores.
    sd = {k: v.double() for k, v in model.state_dict().items()}
    E = sd["decoder.token_embedding.weight"]
    d, H = dims.n_text_state, dims.n_text_head
    dh = d // H
    P = torch.eye(d, dtype=torch.float64) - 1.0 / d
    gf = torch.diag(sd["decoder.ln.weight"])
    copying = []
    for l in range(dims.n_text_layer):
        g1 = torch.diag(sd[f"decoder.blocks.{l}.attn_ln.weight"])
        wv, wo = sd[f"decoder.blocks.{l}.attn.value.weight"], sd[f"decoder.blocks.{l}.attn.out.weight"]
        row = []
        for h in range(H):
            m = wo[:, h * dh:(h + 1) * dh].T @ P @ gf @ (E.T @ E) @ P @ g1 @ wv[h * dh:(h + 1) * dh, :].T
            lam = torch.linalg.eigvals(m)
            row.append(float(lam.real.sum() / lam.abs().sum()))
        copying.append(row)
    out["scores"]["copying"] = copying

    # The jfk clip.
    audio = load_audio(os.path.join(ROOT, "data/clips/jfk.wav"))
    mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(audio)), dims.n_mels)
    with torch.no_grad():
        res = whisper.decode(model, mel, whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False))
    text = list(res.tokens)
    tokens = prompt + text + [tok.eot]
    out["jfk_tokens"] = text
    a = (len(audio) + 319) // 320
    pats = patterns(model, mel, tokens)
    enc = {k: [[0.0] * dims.n_audio_head for _ in range(dims.n_audio_layer)] for k in
           ["previous_frame", "band_width", "local_share", "padding_share", "first_frame_share"]}
    for l in range(dims.n_audio_layer):
        for h in range(dims.n_audio_head):
            for k, v in encoder_stats(pats[("enc", l)][h], a).items():
                enc[k][l][h] = float(v)
    out["jfk_encoder"] = enc
    prev, dup, ind = detection(tokens)
    out["jfk_decoder"] = {
        "previous_token_text": [[mul(pats[("self", l)][h], prev) for h in range(H)] for l in range(dims.n_text_layer)],
        "duplicate_token_text": [[mul(pats[("self", l)][h], dup) for h in range(H)] for l in range(dims.n_text_layer)]
        if dup.any() else None,
    }
    rows = range(len(prompt), len(tokens) - 1)
    mono = []
    for l in range(dims.n_text_layer):
        row = []
        for h in range(H):
            p = pats[("cross", l)][h]
            peaks = [int(np.argmax(p[i, :a])) for i in rows]
            row.append(spearman(list(rows), peaks))
        mono.append(row)
    out["jfk_monotonicity"] = mono
    num_frames = min(len(audio) // 160, 3000)
    timings = []
    for l in range(dims.n_text_layer):
        row = []
        for h in range(H):
            mask = torch.zeros(dims.n_text_layer, H, dtype=torch.bool)
            mask[l, h] = True
            model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
            words = find_alignment(model, tok, text, mel, num_frames)
            row.append([[w.word, float(w.start), float(w.end)] for w in words])
        timings.append(row)
    out["jfk_word_timing"] = timings
    path = os.path.join(HERE, "tiny.en", "heads_jfk.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
