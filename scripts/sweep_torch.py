"""The block-ablation sweep done the plain way: openai-whisper with PyTorch forward hooks, one
`decode` per clip and condition (the reference for Auscult's sweep and its benchmark peer).

  skip   the block's forward hook returns its input (what it writes to the stream is zero)
  swap   the block writes what it writes on a donor clip: the donor runs in the same batch
         (row 1) and a forward hook sets row 0's output to in0 + (out1 - in1); for decoder
         blocks a logit filter makes row 1 feed row 0's tokens, so only the audio differs.
Donors follow Auscult's rule (Sweep.donor): SplitMix64 seeded with seed + 1000003*clip + draw.
Each condition also gets the cross-entropy of the clean transcript (end-of-text included),
teacher-forced, as Auscult reports it.
"""
import os
import numpy as np, soundfile as sf, torch, whisper
from whisper.decoding import DecodingOptions, DecodingTask, LogitFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 0
M64 = (1 << 64) - 1


def splitmix(seed):
    z = (seed + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def donor(clip, draw, n, seed):
    k = splitmix((seed + clip * 1000003 + draw) & M64) % (n - 1)
    return k + 1 if k >= clip else k


class FollowRow0(LogitFilter):
    """Row 1 feeds whatever row 0 picks (greedy): everything else in row 1 is -inf."""
    def apply(self, logits, tokens):
        pick = logits[0].argmax()
        logits[1] = -np.inf
        logits[1, pick] = 0


def mel_of(cid, model):
    a, sr = sf.read(os.path.join(ROOT, "data/clips", cid + ".wav"), dtype="int16")
    return whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(a.astype(np.float32) / 32768.0)), model.dims.n_mels)


def run(model, mels, hooks, follow=False):
    handles = [m.register_forward_hook(f) for m, f in hooks]
    try:
        task = DecodingTask(model, DecodingOptions(language="en", without_timestamps=True, fp16=False))
        if follow:
            task.logit_filters.append(FollowRow0())
        return task.run(torch.stack(mels))[0].tokens
    finally:
        for h in handles: h.remove()


def ce(model, mels, tokens, hooks):
    """Mean -log p of tokens[4:] (after the prompt) for row 0, teacher-forced on both rows."""
    handles = [m.register_forward_hook(f) for m, f in hooks]
    try:
        with torch.no_grad():
            audio = model.encoder(torch.stack(mels))
            t = torch.tensor([tokens] * len(mels))
            logits = model.decoder(t, audio)[0]
        lp = torch.log_softmax(logits.double(), dim=-1)
        start = 2  # after the prompt: <|startoftranscript|><|notimestamps|> on tiny.en
        return float(-np.mean([lp[p - 1, tokens[p]].item() for p in range(start, len(tokens))]))
    finally:
        for h in handles: h.remove()


def swap_hook(_m, inp, out):
    out = out.clone()
    out[0] = inp[0][0] + (out[1] - inp[0][1])
    return out



def plain_sweep(model, clips, seed=SEED):
    """Entries {clip, condition, donor, tokens, ce}: clean, then skip and swap of every block."""
    tok = whisper.tokenizer.get_tokenizer(model.is_multilingual)
    prompt = [tok.sot, tok.no_timestamps]
    mels = [mel_of(c, model) for c in clips]
    n = len(clips)
    out, clean = [], {}
    for i, c in enumerate(clips):
        toks = run(model, [mels[i]], [])
        clean[i] = prompt + toks + [tok.eot]
        out.append({"clip": c, "condition": "clean", "donor": None, "tokens": toks, "ce": ce(model, [mels[i]], clean[i], [])})
    for side in ["encoder", "decoder"]:
        blocks = model.encoder.blocks if side == "encoder" else model.decoder.blocks
        for L, block in enumerate(blocks):
            skip = [(block, lambda m, inp, o: inp[0])]
            for i, c in enumerate(clips):
                out.append({"clip": c, "condition": f"skip {side}.blocks.{L}", "donor": None,
                            "tokens": run(model, [mels[i]], skip), "ce": ce(model, [mels[i]], clean[i], skip)})
            for i, c in enumerate(clips):
                d = donor(i, 0, n, seed)
                toks = run(model, [mels[i], mels[d]], [(block, swap_hook)], follow=(side == "decoder"))
                out.append({"clip": c, "condition": f"swap {side}.blocks.{L}", "donor": clips[d],
                            "tokens": toks, "ce": ce(model, [mels[i], mels[d]], clean[i], [(block, swap_hook)])})
    return out


def manifest_clips():
    """Clip ids of data/clips in manifest order (the order Auscult's dataset loader uses)."""
    import csv
    with open(os.path.join(ROOT, "data/clips/manifest.csv")) as f:
        return [r["id"] for r in csv.DictReader(f)]
