#!/usr/bin/env bash
# The main job on the embedded default model: transcribe the bundled clips with tiny.en and
# print each transcript and the corpus WER. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product auscult
.build/release/auscult transcribe --data data/clips "$@"
