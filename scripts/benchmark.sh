#!/usr/bin/env bash
# Side-by-side benchmark: Auscult vs openai-whisper (PyTorch), Hugging Face transformers,
# CTranslate2 (fp32) and numpy, in one run on this machine, printing ratios.
#   scripts/benchmark.sh [--models tiny.en,base] [--repeats 5]
# Installs the peers into .venv-bench (pip, PyPI). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset
# for every side alike, so no peer runs on a crippled BLAS kernel choice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product auscult >&2
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c "import torch, whisper, transformers, ctranslate2, safetensors" 2>/dev/null; then
  echo "benchmark: installing peers into .venv-bench (torch, openai-whisper, transformers, ctranslate2)" >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q --disable-pip-version-check torch openai-whisper transformers ctranslate2 safetensors soundfile >&2
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
exec .venv-bench/bin/python scripts/benchmark.py "$@"
