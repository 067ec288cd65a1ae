"""SAE checkpoints round-trip between Auscult and the Python SAE libraries: SAEs saved by SAELens
(standard, TopK, JumpReLU, with and without apply_b_dec_to_input) and by sparsify give the same
latents in Auscult (`auscult encode-sae`) as in the library, and SAEs Auscult trains (ReLU, TopK,
BatchTopK) load in SAELens with the same latents. Inputs are real activations of tiny.en
(`auscult cache`)."""
import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import ROOT, auscult

HOOK = "encoder.blocks.2.hook_resid_post"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def activations(tmp_path_factory):
    """The hook's activations on jfk.wav's frames that hold audio, [N, 384], as a file of its own."""
    out = tmp_path_factory.mktemp("acts")
    auscult("cache", "--hooks", HOOK, "--out", str(out / "cache.safetensors"), "data/clips/jfk.wav")
    from safetensors import safe_open

    with safe_open(str(out / "cache.safetensors"), "pt") as f:
        acts = f.get_tensor(HOOK)
        acts = acts.reshape(-1, acts.shape[-1])
        frames = int(f.metadata()["audio_frames"])
    x = acts[:frames].contiguous()
    save_file({"x": x}, str(out / "x.safetensors"))
    return out / "x.safetensors", x


def encode_in_auscult(sae_dir, input_file, tmp_path):
    out = tmp_path / "latents.safetensors"
    auscult("encode-sae", "--sae", str(sae_dir), "--input", str(input_file), "--out", str(out))
    return load_file(str(out))["latents"]


def assert_same_latents(ours, theirs, pre, threshold=None, k=None):
    """Equal latents, up to float32 rounding; an entry active in one and not the other is allowed
    only where the decision is on a knife's edge (pre-activation within TOLERANCE of the
    threshold, or of the k-th largest)."""
    assert ours.shape == theirs.shape
    both = (ours > 0) & (theirs > 0)
    diff = (ours - theirs)[both].abs().max().item() if both.any() else 0.0
    assert diff < TOLERANCE, f"max difference on shared active latents {diff}"
    disagree = (ours > 0) != (theirs > 0)
    if disagree.any():
        rows, cols = disagree.nonzero(as_tuple=True)
        z = pre[rows, cols]
        if threshold is not None:
            margin = (z - threshold[cols]).abs()
        elif k is not None:
            kth = pre.topk(k, dim=-1).values[:, -1]
            margin = (z - kth[rows]).abs()
        else:
            margin = z.abs()
        assert margin.max().item() < TOLERANCE, f"{int(disagree.sum())} latents differ away from any boundary"
    return diff


def saelens_sae(kind, apply_b_dec, d_in, d_sae=768, k=16, seed=0):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    torch.manual_seed(seed)
    common = dict(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=apply_b_dec)
    if kind == "standard":
        sae = StandardSAE(StandardSAEConfig(**common))
    elif kind == "topk":
        sae = TopKSAE(TopKSAEConfig(k=k, **common))
    else:
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    with torch.no_grad():
        for p in [sae.W_enc, sae.W_dec]:
            p.copy_(torch.randn_like(p) / d_in**0.5)
        sae.b_enc.copy_(torch.randn_like(sae.b_enc) * 0.1)
        sae.b_dec.copy_(torch.randn_like(sae.b_dec) * 0.1)
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand_like(sae.threshold) * 0.5)
    sae.cfg.metadata.hook_name = HOOK
    sae.cfg.metadata.model_name = "tiny.en"
    return sae


@pytest.mark.parametrize(
    "kind,apply_b_dec",
    [("standard", True), ("standard", False), ("topk", True), ("topk", False), ("jumprelu", True),
     ("jumprelu", False)])
def test_an_sae_saved_by_saelens_gives_saelens_latents_in_auscult(activations, tmp_path, kind, apply_b_dec):
    input_file, x = activations
    sae = saelens_sae(kind, apply_b_dec, d_in=x.shape[1])
    sae.save_model(tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == HOOK and "hook_name" not in cfg, "SAELens 6 layout"
    with torch.no_grad():
        theirs = sae.encode(x)
        pre = (x - sae.b_dec * apply_b_dec) @ sae.W_enc + sae.b_enc
    ours = encode_in_auscult(tmp_path / "sae", input_file, tmp_path)
    diff = assert_same_latents(
        ours, theirs, pre, threshold=sae.threshold.detach() if kind == "jumprelu" else None,
        k=16 if kind == "topk" else None)
    print(f"{kind} apply_b_dec_to_input={apply_b_dec}: max latent difference {diff:.2e}")


def test_settings_auscult_does_not_run_are_refused_by_name(activations, tmp_path):
    input_file, x = activations
    sae = saelens_sae("topk", True, d_in=x.shape[1])
    sae.cfg.rescale_acts_by_decoder_norm = True
    sae.save_model(tmp_path / "rescaled")
    run = subprocess.run(
        [str(ROOT / ".build/release/auscult"), "encode-sae", "--sae", str(tmp_path / "rescaled"), "--input",
         str(input_file), "--out", str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert run.returncode != 0 and "rescale_acts_by_decoder_norm" in run.stderr
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("skip", [False, True])
def test_a_sparsify_sae_gives_sparsify_latents_in_auscult_and_a_skip_connection_is_refused(
        activations, tmp_path, skip):
    from sparsify import SparseCoder, SparseCoderConfig

    input_file, x = activations
    torch.manual_seed(1)
    coder = SparseCoder(x.shape[1], SparseCoderConfig(num_latents=768, k=16, skip_connection=skip))
    with torch.no_grad():
        coder.encoder.bias.copy_(torch.randn_like(coder.encoder.bias) * 0.1)
        coder.b_dec.copy_(torch.randn_like(coder.b_dec) * 0.1)
    coder.save_to_disk(tmp_path / "sparsify")
    if skip:
        run = subprocess.run(
            [str(ROOT / ".build/release/auscult"), "encode-sae", "--sae", str(tmp_path / "sparsify"), "--input",
             str(input_file), "--out", str(tmp_path / "out.safetensors")], capture_output=True, text=True)
        assert run.returncode != 0 and "W_skip" in run.stderr
        return
    with torch.no_grad():
        top_acts, top_indices, pre = coder.encode(x)
        theirs = torch.zeros(x.shape[0], 768).scatter_(1, top_indices, top_acts)
    ours = encode_in_auscult(tmp_path / "sparsify", input_file, tmp_path)
    diff = assert_same_latents(ours, theirs, pre, k=16)
    print(f"sparsify topk: max latent difference {diff:.2e}")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Activations of the bundled clips at the hook, collected once (`auscult collect`)."""
    out = tmp_path_factory.mktemp("store")
    auscult("collect", "--hook", HOOK, "--data", "data/clips", "--out", str(out))
    return out


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk"])
def test_an_sae_auscult_trains_loads_in_saelens_with_the_same_latents(store, activations, tmp_path, arch):
    from sae_lens import SAE

    input_file, x = activations
    out = tmp_path / arch
    auscult("train-sae", "--store", str(store), "--arch", arch, "--d-sae", "768", "--k", "16", "--steps", "60",
            "--batch-size", "256", "--lr", "1e-3", "--warmup", "5", "--out", str(out))
    sae = SAE.load_from_disk(out)
    expected = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu"}[arch]
    assert sae.cfg.architecture() == expected
    assert sae.cfg.metadata.hook_name == HOOK
    with torch.no_grad():
        theirs = sae.encode(x)
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    ours = encode_in_auscult(out, input_file, tmp_path)
    assert (ours > 0).sum() > 0
    diff = assert_same_latents(
        ours, theirs, pre, threshold=sae.threshold.detach() if arch == "batchtopk" else None,
        k=16 if arch == "topk" else None)
    print(f"Auscult {arch} in SAELens: max latent difference {diff:.2e}")
    if arch == "batchtopk":
        assert torch.all(sae.threshold == sae.threshold[0]) and sae.threshold[0] > 0
