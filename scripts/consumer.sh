#!/usr/bin/env bash
# Builds and runs Examples/HelloAuscult as a user's package would: Auscult through a git URL at a
# version tag (a temporary clone of this repository's committed HEAD, tagged there), a plain
# `swift build -c release` with no flags. The hello world it runs is the README's code block,
# which must equal Examples/HelloAuscult/Sources/HelloAuscult/main.swift.
#   scripts/consumer.sh            # build and run the hello world
#   scripts/consumer.sh --timing   # also print ForwardTiming's JSON (the benchmark reads it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh >&2
work=${AUSCULT_CONSUMER_DIR:-$root/.build-consumer}
# One version per commit: SwiftPM keeps what it fetched for a tag, so a reused tag name would
# build an older commit.
version=0.0.0-consumer.g$(git rev-parse --short HEAD)
rm -rf "$work/auscult" "$work/consumer/Sources"
mkdir -p "$work"
git clone -q "$root" "$work/auscult"
git -C "$work/auscult" tag "$version"
mkdir -p "$work/consumer"
cp -r Examples/HelloAuscult/. "$work/consumer/"
# The README's hello world, exactly: the code block between the hello-world markers.
python3 - "$root/README.md" "$work/consumer/Sources/HelloAuscult/main.swift" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- hello-world -->\s*```swift\n(.*?)```", text, re.S)
if not m:
    sys.exit("consumer: README.md has no ```swift block after <!-- hello-world -->")
code = m.group(1)
lines = code.strip("\n").count("\n") + 1
if lines > 15:
    sys.exit(f"consumer: the README's hello world is {lines} lines; it should stay within 15")
committed = open(sys.argv[2], encoding="utf-8").read()
if code != committed:
    sys.exit("consumer: the README's hello world differs from Examples/HelloAuscult/Sources/HelloAuscult/main.swift")
open(sys.argv[2], "w", encoding="utf-8").write(code)
print(f"consumer: the README's hello world, {lines} lines", file=sys.stderr)
PY
export AUSCULT_GIT_URL="file://$work/auscult" AUSCULT_VERSION="$version"
(cd "$work/consumer" && rm -rf Package.resolved .build/checkouts .build/repositories && swift build -c release >&2)
bin=$(cd "$work/consumer" && swift build -c release --show-bin-path)
AUSCULT_MODELS="$root/models" "$bin/HelloAuscult"
if [ "${1:-}" = "--timing" ]; then
  AUSCULT_MODELS="$root/models" "$bin/ForwardTiming" data/clips/jfk.wav 5
fi
