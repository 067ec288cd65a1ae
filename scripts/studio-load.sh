#!/usr/bin/env bash
# The Studio's speed: feature-page data on a synthetic index of 10,000 clips x 6,144 features
# (scripts/studio_synthetic.py) for one client and for 8 concurrent clients (wrk, Debian's), and
# upload -> transcript and top features for a 10 s clip with tiny.en (through the same index). Prints a summary and, last,
# one JSON line. Usage: scripts/studio-load.sh [SECONDS_FOR_8_CLIENTS (30)]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq wrk >/dev/null; }
bin=.build/release/auscult
[ -x "$bin" ] || swift build -c release --product auscult >&2
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python3 scripts/studio_synthetic.py "$work" >&2
"$bin" studio --index "$work/synthetic.sqlite" --port 0 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do grep -q "http://" "$work/server.log" && break; sleep 0.1; done
address=$(grep -o 'http://[^ ]*' "$work/server.log" | head -n1)
[ -n "$address" ] || { cat "$work/server.log" >&2; exit 1; }
export STUDIO_INDEX=synthetic STUDIO_FEATURES=6144
one=$(wrk -t1 -c1 -d10s -s scripts/studio-load.lua "$address" | tail -n1)
eight=$(wrk -t2 -c8 -d"${seconds}s" -s scripts/studio-load.lua "$address" | tail -n1)
# Upload: the first 10 s of jfk.wav, five times (the server keeps no result between them).
python3 - "$work/clip10.wav" <<'PY'
import sys, wave
src = wave.open("data/clips/jfk.wav"); rate = src.getframerate()
frames = src.readframes(10 * rate)
out = wave.open(sys.argv[1], "wb"); out.setparams(src.getparams()); out.writeframes(frames); out.close()
PY
times=()
for _ in 1 2 3 4 5; do
  times+=("$(curl -s -o /dev/null -w '%{time_total}' --data-binary @"$work/clip10.wav" \
    -H 'Content-Type: application/octet-stream' "${address}api/indexes/synthetic/inspect?name=clip10.wav")")
done
upload="[$(IFS=,; echo "${times[*]}")]"
python3 - "$one" "$eight" "$upload" <<'PY'
import json, statistics, sys
one, eight, upload = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"== studio (synthetic index: 10,000 clips x 6,144 features)")
print(f"  feature page, 1 client   {one['requests']} requests in {one['seconds']:.0f} s: p50 {one['p50_ms']:.2f} ms, "
      f"p95 {one['p95_ms']:.2f} ms (< 50 ms expected), errors {one['non_200'] + one['socket_errors']}")
print(f"  feature page, 8 clients  {eight['requests']} requests in {eight['seconds']:.0f} s: p50 {eight['p50_ms']:.2f} ms, "
      f"p95 {eight['p95_ms']:.2f} ms, p99 {eight['p99_ms']:.2f} ms, errors {eight['non_200'] + eight['socket_errors']}")
print(f"  upload -> transcript and top features, 10 s clip, tiny.en: median {statistics.median(upload) * 1e3:.0f} ms "
      f"(runs {', '.join(f'{t * 1e3:.0f}' for t in upload)} ms; < 1 s expected)")
print(json.dumps({"stage": "studio", "one_client": one, "eight_clients": eight,
                  "upload_s": statistics.median(upload)}))
PY
