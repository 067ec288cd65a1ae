#!/usr/bin/env python3
"""Makes the miniature openai-whisper checkpoint the .pt loader tests read.

  python make_fixture.py   (needs torch, openai-whisper, safetensors: scripts/benchmark.sh's venv has them)

Writes, beside this file:
  mini.pt                 torch.save({"dims": ..., "model_state_dict": ...}) exactly as openai-whisper's
                          checkpoints are laid out, with fp16 tensors (as the released checkpoints)
  mini.safetensors        the same state dict in float32 (the fp16 values widened), the test's twin
  mini_outputs.safetensors  PyTorch's encoder output and logits for a fixed mel and token sequence
"""
import os
import torch
from safetensors.torch import save_file
from whisper.model import ModelDimensions, Whisper

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1234)
dims = ModelDimensions(n_mels=80, n_audio_ctx=16, n_audio_state=8, n_audio_head=2, n_audio_layer=2,
                       n_vocab=100, n_text_ctx=12, n_text_state=8, n_text_head=2, n_text_layer=2)
model = Whisper(dims)
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.randn_like(p) * 0.5)
model = model.half().float()  # values exactly representable in fp16
sd = {k: v.half() for k, v in model.state_dict().items()}
torch.save({"dims": dims.__dict__, "model_state_dict": sd}, os.path.join(here, "mini.pt"))
save_file({k: v.float().contiguous() for k, v in sd.items()}, os.path.join(here, "mini.safetensors"))

model.eval()
mel = torch.randn(1, 80, 32)
tokens = torch.tensor([[3, 17, 42, 99, 0, 5]])
with torch.no_grad():
    features = model.encoder(mel)
    logits = model.decoder(tokens, features)
save_file({"mel": mel[0].contiguous(), "tokens": tokens[0].int().contiguous(),
           "audio_features": features[0].contiguous(), "logits": logits[0].contiguous()},
          os.path.join(here, "mini_outputs.safetensors"))
print("wrote", here)
