"""`auscult convert` round trips: the directory it writes is used by Hugging Face transformers
as it is (WhisperProcessor, generate, pipeline) and gives Auscult's tokens, and CTranslate2's
converter turns it into a model Auscult reads back with the same tokens."""
import json
import subprocess

import numpy as np
import pytest
import soundfile
import torch
from safetensors.numpy import load_file
from transformers import (
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
    pipeline,
)

from conftest import CLIPS, ROOT, auscult, transcribe

TEN_CLIPS = CLIPS[:10]


def load(clip):
    samples, rate = soundfile.read(ROOT / clip, dtype="float32")
    assert rate == 16000, f"{clip}: the bundled clips are 16 kHz"
    return samples


def generate(directory, clips, multilingual, dtype=torch.float32):
    """transformers' greedy generate on each clip: the text tokens (no specials) and the text."""
    processor = WhisperProcessor.from_pretrained(directory)
    model = WhisperForConditionalGeneration.from_pretrained(directory, dtype=dtype).eval()
    language = dict(language="en", task="transcribe") if multilingual else {}
    results = {}
    for clip in clips:
        features = processor(load(clip), sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(features, **language)[0].tolist()
        eot = processor.tokenizer.eos_token_id
        results[clip] = ([t for t in ids if t < eot], processor.decode(ids, skip_special_tokens=True).strip())
    return results


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_generate_on_the_converted_model_gives_auscults_tokens_on_ten_clips(converted, model):
    ours = transcribe(model, TEN_CLIPS)
    theirs = generate(converted(model), TEN_CLIPS, multilingual=model == "base")
    for clip in TEN_CLIPS:
        assert theirs[clip][0] == ours[clip]["tokens"], clip
        assert theirs[clip][1] == ours[clip]["text"], clip


def test_the_asr_pipeline_runs_on_the_converted_model(converted):
    asr = pipeline("automatic-speech-recognition", model=str(converted("tiny.en")))
    text = asr({"raw": load("data/clips/jfk.wav"), "sampling_rate": 16000})["text"]
    assert text.strip() == transcribe("tiny.en", ["data/clips/jfk.wav"])["data/clips/jfk.wav"]["text"]


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_the_tokenizer_encodes_and_decodes_as_auscult_does(converted, model):
    tokenizer = WhisperTokenizer.from_pretrained(converted(model))
    config = json.loads((converted(model) / "config.json").read_text())
    assert len(tokenizer) == config["vocab_size"]
    text = " And so my fellow Americans, naïve café 1813 ¿qué?"
    ours = json.loads(auscult("tokens", "--model", model, "--format", "json", text))["ids"]
    assert tokenizer(text, add_special_tokens=False).input_ids == ours
    assert tokenizer.decode(ours) == text
    generation = json.loads((converted(model) / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<|notimestamps|>") == generation["no_timestamps_token_id"]
    assert tokenizer.convert_ids_to_tokens(generation["no_timestamps_token_id"] + 1) == "<|0.00|>"
    if model == "base":
        assert generation["lang_to_id"]["<|en|>"] == tokenizer.convert_tokens_to_ids("<|en|>")
        assert generation["task_to_id"]["transcribe"] == tokenizer.convert_tokens_to_ids("<|transcribe|>")


@pytest.mark.parametrize("dtype,torch_dtype", [("f16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_precision_files_hold_the_float32_weights_rounded(converted, dtype, torch_dtype):
    full = load_file(str(converted("tiny.en") / "model.safetensors"))
    half_dir = converted("tiny.en", dtype)
    config = json.loads((half_dir / "config.json").read_text())
    assert config["dtype"] == str(torch_dtype).removeprefix("torch.")
    from safetensors.torch import load_file as load_torch

    half = load_torch(str(half_dir / "model.safetensors"))
    assert set(half) == set(full)
    for name, value in full.items():
        assert half[name].dtype == torch_dtype, name
        assert torch.equal(half[name], torch.from_numpy(value).to(torch_dtype)), name
    # transformers loads it in its own dtype, and decodes.
    model = WhisperForConditionalGeneration.from_pretrained(half_dir).eval()
    assert model.dtype == torch_dtype


def test_f16_of_an_fp16_checkpoint_loses_nothing(converted):
    # tiny.en is installed as a CTranslate2 float16 checkpoint: its f16 conversion is exact, so
    # transformers gives Auscult's tokens from it too.
    clips = TEN_CLIPS[:4]
    ours = transcribe("tiny.en", clips)
    theirs = generate(converted("tiny.en", "f16"), clips, multilingual=False, dtype=torch.float32)
    for clip in clips:
        assert theirs[clip][0] == ours[clip]["tokens"], clip


def test_ctranslate2s_converter_makes_a_model_auscult_reads_with_the_same_tokens(converted, tmp_path):
    out = tmp_path / "ct2"
    subprocess.run(
        [str(ROOT / ".venv-interop" / "bin" / "ct2-transformers-converter"), "--model",
         str(converted("tiny.en")), "--output_dir", str(out), "--copy_files", "tokenizer.json"],
        check=True, capture_output=True)
    original = json.loads((ROOT / "models" / "tiny.en" / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    for key in ["alignment_heads", "suppress_ids", "suppress_ids_begin"]:
        assert config[key] == original[key], key
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    assert len(vocabulary) == 51864 and vocabulary[50256] == "<|endoftext|>" and vocabulary[-1] == "<|30.00|>"
    clips = TEN_CLIPS[:4]
    ours = transcribe("tiny.en", clips)
    again = transcribe(str(out), clips)
    for clip in clips:
        assert again[clip]["tokens"] == ours[clip]["tokens"], clip
