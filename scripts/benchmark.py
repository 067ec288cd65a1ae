#!/usr/bin/env python3
"""Times Auscult and its peers on the same inputs in one process tree and prints ratios.

Stage sae (tiny.en): TopK SAE training on encoder.blocks.2.hook_resid_post over all bundled clips,
`auscult train-sae` against the same trainer in PyTorch (scripts/sae_torch.py), rows per second
and final FVU.
Stage sweep (tiny.en): the block-ablation sweep (every encoder and decoder block, zero and
resample, one donor, all bundled clips, transcripts and cross-entropy), `auscult ablate` as one
command against openai-whisper with PyTorch forward hooks, one decode per clip and condition
(scripts/sweep_torch.py); also counts the clip x condition results whose tokens agree.
Stage library (tiny.en): the forward pass as a package that depends on Auscult at a version gets it
(Examples/HelloAuscult's ForwardTiming, built by scripts/consumer.sh with no flags) against
`auscult bench` on the same clip: encoder forward of one window, best of five; the ratio should
stay within the noise (<= 1.05).
Stages (per model, "core"): log-mel of a 30 s window; encoder forward on one 30 s window; greedy
transcription of all bundled clips (openai-whisper `decode` settings: one padded window, no
timestamps, suppress blank/non-speech tokens, at most 224 tokens). Peers get the same weights:
Auscult converts the CTranslate2 model to a Hugging Face directory, from which the openai-whisper
state dict is derived; CTranslate2 runs the original directory with compute_type=float32.
"""
import argparse, glob, json, os, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUSCULT = os.path.join(ROOT, ".build/release/auscult")
CLIPS = sorted(glob.glob(os.path.join(ROOT, "data/clips/*.wav")))
JFK = os.path.join(ROOT, "data/clips/jfk.wav")


def best(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


def load_audio(path):
    import soundfile as sf
    a, sr = sf.read(path, dtype="int16")
    return a.astype(np.float32) / 32768.0


def hf_dir(model):
    out = os.path.join(ROOT, "models", ".hf-" + model)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        subprocess.run([AUSCULT, "convert", "--model", model, "--out", out], check=True, stdout=subprocess.DEVNULL)
    return out


def openai_model(hfpath):
    """openai-whisper Whisper built from the Hugging Face safetensors (inverse key mapping)."""
    import torch
    from safetensors.torch import load_file
    from whisper.model import ModelDimensions, Whisper
    cfg = json.load(open(os.path.join(hfpath, "config.json")))
    sd = load_file(os.path.join(hfpath, "model.safetensors"))
    pairs = [(".layers.", ".blocks."), (".final_layer_norm.", ".mlp_ln."), (".fc1.", ".mlp.0."), (".fc2.", ".mlp.2."),
             (".encoder_attn_layer_norm.", ".cross_attn_ln."), (".self_attn_layer_norm.", ".attn_ln."),
             (".encoder_attn.q_proj.", ".cross_attn.query."), (".encoder_attn.k_proj.", ".cross_attn.key."),
             (".encoder_attn.v_proj.", ".cross_attn.value."), (".encoder_attn.out_proj.", ".cross_attn.out."),
             (".self_attn.q_proj.", ".attn.query."), (".self_attn.k_proj.", ".attn.key."),
             (".self_attn.v_proj.", ".attn.value."), (".self_attn.out_proj.", ".attn.out."),
             ("encoder.layer_norm.", "encoder.ln_post."), ("decoder.layer_norm.", "decoder.ln."),
             ("decoder.embed_tokens.", "decoder.token_embedding.")]
    out = {}
    for k, v in sd.items():
        k = k[len("model."):]
        for a, b in pairs: k = k.replace(a, b)
        k = {"encoder.embed_positions.weight": "encoder.positional_embedding",
             "decoder.embed_positions.weight": "decoder.positional_embedding"}.get(k, k)
        out[k] = v
    dims = ModelDimensions(n_mels=cfg["num_mel_bins"], n_audio_ctx=cfg["max_source_positions"], n_audio_state=cfg["d_model"],
                           n_audio_head=cfg["encoder_attention_heads"], n_audio_layer=cfg["encoder_layers"],
                           n_vocab=cfg["vocab_size"], n_text_ctx=cfg["max_target_positions"], n_text_state=cfg["d_model"],
                           n_text_head=cfg["decoder_attention_heads"], n_text_layer=cfg["decoder_layers"])
    m = Whisper(dims)
    m.load_state_dict(out)
    return m.eval()


def torch_gradient(m, padded, model, repeats):
    """openai-whisper + autograd: forward teacher-forced on the clip's transcript and backward of its
    cross-entropy down to the log-mel, as `auscult bench --stages gradient` times it (best of repeats)."""
    import torch
    import torch.nn.functional as F
    import whisper
    prompt = [50257, 50362] if model.endswith(".en") else [50258, 50259, 50359, 50363]
    with torch.no_grad():
        mel0 = whisper.log_mel_spectrogram(torch.from_numpy(padded), m.dims.n_mels)
        opts = whisper.DecodingOptions(task="transcribe", language="en", temperature=0.0, without_timestamps=True, fp16=False)
        text = whisper.decode(m, mel0, opts).tokens
    tokens = torch.tensor([(prompt + list(text) + [prompt[0] - 1])])
    start = len(prompt) - 1

    def step():
        mel = mel0[None].clone().requires_grad_(True)
        logits = m.decoder(tokens, m.encoder(mel))[0]
        F.cross_entropy(logits[start:-1], tokens[0, start + 1:]).backward()
    return best(step, max(repeats, 3))


def auscult(model, stages, repeats):
    r = subprocess.run([AUSCULT, "bench", "--model", model, "--stages", stages, "--repeats", str(repeats),
                        "--batch-size", "16"] + CLIPS, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def library_stage():
    """The consumer package's encoder forward against the CLI's, same clip, same repeats."""
    clip = os.path.join(ROOT, "data/clips/jfk.wav")
    r = subprocess.run([os.path.join(ROOT, "scripts/consumer.sh"), "--timing"], check=True, capture_output=True, text=True)
    lib = json.loads(r.stdout.strip().splitlines()[-1])
    cli = json.loads(subprocess.run([AUSCULT, "bench", "--model", "tiny.en", "--stages", "encoder", "--repeats", "5", clip],
                                    check=True, capture_output=True, text=True).stdout)
    ratio = lib["encoder_ms"] / (cli["encoder_s"] * 1e3)
    print(f"== library (tiny.en, jfk.wav)\n  encoder     package at a version tag {lib['encoder_ms']:.1f} ms"
          f" | auscult tool {cli['encoder_s'] * 1e3:.1f} ms | ratio {ratio:.3f}x (<= 1.05 expected)", flush=True)
    return {"model": "tiny.en", "stage": "library", "auscult_s": cli["encoder_s"], "library_s": lib["encoder_ms"] / 1e3,
            "ratio": ratio}


def studio_stage():
    """The Studio: feature-page data on a synthetic 10,000-clip x 6,144-feature index for 1 and 8
    clients, and upload -> transcript for a 10 s clip (scripts/studio-load.sh; no peer serves this)."""
    r = subprocess.run([os.path.join(ROOT, "scripts/studio-load.sh")], check=True, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    print("\n".join(lines[:-1]), flush=True)
    return json.loads(lines[-1])


def sweep_stage(skip):
    """The full block-ablation sweep (every encoder and decoder block, zero and resample with one donor,
    38 clips, tiny.en; transcripts and per-token cross-entropy): `auscult ablate` as one command
    against openai-whisper with forward hooks, one decode per clip and condition."""
    import shutil, tempfile
    import torch
    from sweep_torch import plain_sweep, manifest_clips
    out = tempfile.mkdtemp(prefix="auscult-sweep-")
    t = time.perf_counter()
    subprocess.run([AUSCULT, "ablate", "--data", os.path.join(ROOT, "data/clips"), "--out", out, "--fresh",
                    "--modes", "zero,resample"], check=True, capture_output=True)
    mine = time.perf_counter() - t
    ours = json.load(open(os.path.join(out, "results.json")))
    shutil.rmtree(out, ignore_errors=True)
    line = f"== sweep (tiny.en, {len(ours)} clip x condition runs)\n  sweep       auscult {mine:7.1f} s"
    row = {"model": "tiny.en", "stage": "sweep", "auscult_s": mine, "peers_s": {}}
    if "torch" not in skip:
        m = openai_model(hf_dir("tiny.en"))
        t = time.perf_counter()
        with torch.no_grad():
            ref = plain_sweep(m, manifest_clips())
        peer = time.perf_counter() - t
        same = sum(1 for a, b in zip(sorted(ours, key=lambda e: (e["clip"], e["condition"])),
                                     sorted(ref, key=lambda e: (e["clip"], e["condition"]))) if a["tokens"] == b["tokens"])
        line += f" | openai-whisper + hooks {peer:7.1f} s (auscult/peer {mine / peer:5.2f}x); tokens identical in {same}/{len(ref)}"
        row["peers_s"]["openai-whisper-hooks"] = peer
        row["identical"] = same
    print(line, flush=True)
    return row


SAE = {"arch": "topk", "k": 32, "expansion": 8, "steps": 300, "batch_size": 512, "lr": 1e-3, "warmup": 30}


def sae_stage(skip):
    """SAE training throughput: a TopK SAE (k 32, 8x) on tiny.en encoder.blocks.2.hook_resid_post
    over all bundled clips, `auscult train-sae` against the same training written in PyTorch
    (scripts/sae_torch.py: same initial weights, same batches, same optimiser). Both count rows
    per second of the training loop alone and report FVU over every row at the end."""
    import shutil, tempfile
    work = tempfile.mkdtemp(prefix="auscult-sae-")
    store, out = os.path.join(work, "store"), os.path.join(work, "sae")
    subprocess.run([AUSCULT, "collect", "--hook", "encoder.blocks.2.hook_resid_post", "--data", os.path.join(ROOT, "data/clips"),
                    "--out", store, "--dtype", "f32"], check=True, capture_output=True)
    subprocess.run([AUSCULT, "train-sae", "--store", store, "--out", out, "--arch", SAE["arch"], "--k", str(SAE["k"]),
                    "--expansion", str(SAE["expansion"]), "--steps", str(SAE["steps"]), "--batch-size", str(SAE["batch_size"]),
                    "--lr", str(SAE["lr"]), "--warmup", str(SAE["warmup"])], check=True, capture_output=True)
    mine = json.load(open(os.path.join(out, "summary.json")))
    line = (f"== sae training (tiny.en encoder.blocks.2, {mine['rows']} rows, topk k {SAE['k']}, {SAE['expansion']}x, "
            f"{SAE['steps']} steps of {SAE['batch_size']})\n  train-sae   auscult {mine['rows_per_second']:8.0f} rows/s, FVU {mine['fvu_all_rows']:.4f}")
    row = {"model": "tiny.en", "stage": "sae", "auscult_rows_per_s": mine["rows_per_second"], "auscult_fvu": mine["fvu_all_rows"], "peers": {}}
    if "torch" not in skip:
        from sae_torch import train
        peer = train(argparse.Namespace(store=store, arch=SAE["arch"], k=SAE["k"], l1=5e-3, expansion=SAE["expansion"], d_sae=None,
                                        steps=SAE["steps"], batch_size=SAE["batch_size"], lr=SAE["lr"], warmup=SAE["warmup"],
                                        dead_after=50_000, seed=0, threads=os.cpu_count(), quiet=True))
        line += (f" | pytorch {peer['rows_per_s']:8.0f} rows/s, FVU {peer['fvu']:.4f} (auscult/peer throughput "
                 f"{mine['rows_per_second'] / peer['rows_per_s']:5.2f}x, FVU {100 * (mine['fvu_all_rows'] / peer['fvu'] - 1):+.2f} %)")
        row["peers"]["pytorch"] = {"rows_per_s": peer["rows_per_s"], "fvu": peer["fvu"]}
    shutil.rmtree(work, ignore_errors=True)
    print(line, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tiny.en,base")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma-separated peers to skip: torch,hf,ct2,numpy")
    ap.add_argument("--stages", default="core,sweep,sae,library,studio",
                    help="core: log-mel, encoder, transcription, hooks; sweep: the block-ablation sweep on tiny.en; "
                         "sae: SAE training throughput and FVU against PyTorch; "
                         "library: the forward pass of a package depending on Auscult against the CLI's; "
                         "studio: feature-page latency under load and upload time")
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    skip = set(args.skip.split(","))
    import torch
    torch.set_num_threads(os.cpu_count())
    import whisper
    rows = []
    if "library" in stages:
        rows.append(library_stage())
    if "studio" in stages:
        rows.append(studio_stage())
    if "sweep" in stages:
        rows.append(sweep_stage(skip))
    if "sae" in stages:
        rows.append(sae_stage(skip))
    for model in (args.models.split(",") if "core" in stages else []):
        print(f"== {model} ({len(CLIPS)} clips, {os.cpu_count()} cores)", flush=True)
        hf = hf_dir(model)
        lang = "en"
        a = auscult(model, "mel,encoder,transcribe,hooks,gradient", args.repeats)
        hk = a["hooks"]
        print(f"  hooks       plain forward {hk['plain_s']*1e3:.1f} ms | silent handler attached {hk['silent_ratio']:.3f}x"
              f" | caching every residual stream {hk['cache_ratio']:.3f}x", flush=True)
        rows.append({"model": model, "stage": "hooks", **hk})
        res = {"auscult": {"mel": a["mel_s"], "encoder": a["encoder_s"], "transcribe": a["transcribe_s"]}}
        audio = load_audio(JFK)
        padded = whisper.pad_or_trim(audio)
        if "torch" not in skip:
            m = openai_model(hf)
            mel_t = whisper.log_mel_spectrogram(torch.from_numpy(padded), m.dims.n_mels)
            with torch.no_grad():
                enc = best(lambda: m.encoder(mel_t[None]), args.repeats)
                opts = whisper.DecodingOptions(task="transcribe", language=lang, temperature=0.0, without_timestamps=True, fp16=False)
                def run_all():
                    for c in CLIPS:
                        mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(load_audio(c))), m.dims.n_mels)
                        whisper.decode(m, mel, opts)
                t = time.perf_counter(); run_all(); tr = time.perf_counter() - t
            res["openai-whisper"] = {"mel": best(lambda: whisper.log_mel_spectrogram(torch.from_numpy(padded), m.dims.n_mels), args.repeats),
                                     "encoder": enc, "transcribe": tr}
        if "hf" not in skip:
            try:
                from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration
                fe = WhisperFeatureExtractor(feature_size=80)
                hm = WhisperForConditionalGeneration.from_pretrained(hf, torch_dtype=torch.float32).eval()
                feats = torch.from_numpy(fe(padded, sampling_rate=16000, return_tensors="np").input_features)
                with torch.no_grad():
                    enc = best(lambda: hm.model.encoder(feats), args.repeats)
                    prompt = [50257, 50362] if model.endswith(".en") else [50258, 50259, 50359, 50363]
                    eot = prompt[0] - 1
                    def run_all():
                        for i in range(0, len(CLIPS), 16):
                            batch = [load_audio(c) for c in CLIPS[i:i + 16]]
                            f = torch.from_numpy(fe(batch, sampling_rate=16000, return_tensors="np").input_features)
                            hm.generate(input_features=f, decoder_input_ids=torch.tensor([prompt] * len(batch)),
                                        max_new_tokens=224, do_sample=False, num_beams=1, eos_token_id=eot, pad_token_id=eot)
                    t = time.perf_counter(); run_all(); tr = time.perf_counter() - t
                res["transformers"] = {"mel": best(lambda: fe(padded, sampling_rate=16000, return_tensors="np"), args.repeats),
                                       "encoder": enc, "transcribe": tr}
            except Exception as e:  # a peer failing must not hide the others
                print(f"  transformers: skipped ({type(e).__name__}: {str(e)[:120]})")
        if "ct2" not in skip:
            import ctranslate2
            cm = ctranslate2.models.Whisper(os.path.join(ROOT, "models", model), device="cpu", compute_type="float32",
                                            intra_threads=os.cpu_count())
            f = ctranslate2.StorageView.from_array(whisper.log_mel_spectrogram(torch.from_numpy(padded), 80).numpy()[None])
            enc = best(lambda: cm.encode(f), args.repeats)
            prompt = [50257, 50362] if model.endswith(".en") else [50258, 50259, 50359, 50363]
            def run_all():
                for i in range(0, len(CLIPS), 16):
                    mels = np.stack([whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(load_audio(c))), 80).numpy()
                                     for c in CLIPS[i:i + 16]])
                    cm.generate(ctranslate2.StorageView.from_array(mels), [prompt] * len(mels), beam_size=1, max_length=224,
                                suppress_blank=True)
            t = time.perf_counter(); run_all(); tr = time.perf_counter() - t
            res["ctranslate2-fp32"] = {"encoder": enc, "transcribe": tr}
        g = a["gradient"]
        line = (f"  gradient    auscult forward {g['forward_s']*1e3:.1f} ms (saving activations {g['saving_forward_s']*1e3:.1f} ms),"
                f" forward + backward {g['forward_backward_s']*1e3:.1f} ms (backward {g['backward_over_forward']:.2f}x the forward,"
                f" <= 2.5 expected; peak RSS {g['peak_rss_mb']:.0f} MB)")
        row = {"model": model, "stage": "gradient", "auscult": g}
        if "torch" not in skip:
            peer = torch_gradient(m, padded, model, args.repeats)
            line += (f" | openai-whisper + autograd forward + backward {peer*1e3:.1f} ms"
                     f" (auscult/peer {g['forward_backward_s'] / peer:5.2f}x, <= 1 expected)")
            row["peer_s"] = peer
        print(line, flush=True)
        rows.append(row)
        for stage in ["mel", "encoder", "transcribe"]:
            peers = {k: v[stage] for k, v in res.items() if k != "auscult" and stage in v}
            mine = res["auscult"][stage]
            line = f"  {stage:<11} auscult {mine*1e3:9.1f} ms"
            for k, v in peers.items():
                line += f" | {k} {v*1e3:9.1f} ms (auscult/peer {mine / v:5.2f}x)"
            print(line, flush=True)
            rows.append({"model": model, "stage": stage, "auscult_s": mine, "peers_s": peers})
    out = os.path.join(ROOT, "out", "benchmark.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump(rows, open(out, "w"), indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
