#!/usr/bin/env bash
# Auscult against an earlier commit of itself, in one run on this machine: builds BASE in a
# temporary git worktree and times both binaries' stages alternately (scripts/bench_commits.py):
# log-mel, encoder, whole-set transcription, hooks and gradient on tiny.en and base, the block
# sweep, activation collection and SAE training. "Nothing gets slower" is checked with this.
#   scripts/bench-commits.sh BASE [--rounds 2] [--stages core,sweep,sae]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-commits.sh BASE [--rounds N] [--stages core,sweep,sae]}
shift
scripts/setup.sh
swift build -c release --product auscult >&2
dir=$(mktemp -d /tmp/auscult-base.XXXXXX)
trap 'git worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"' EXIT
git worktree add -f --detach "$dir" "$base" >&2
(cd "$dir" && swift build -c release --product auscult >&2)
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
python3 scripts/bench_commits.py --base "$dir/.build/release/auscult" --head .build/release/auscult \
  --base-name "$(git rev-parse --short "$base")" --head-name "$(git rev-parse --short HEAD)" "$@"
