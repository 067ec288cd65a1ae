#!/usr/bin/env bash
# Property-based check of the Studio's API against its own OpenAPI document: schemathesis (from
# PyPI, in .venv-test, installed by scripts/setup.sh --browser) generates requests for every
# operation of /api/openapi.json from a live `auscult studio` over a small neuron index, and fails
# on any 5xx, any undocumented status, content type or response that breaks the schema.
# Usage: scripts/studio-api-check.sh [MAX_EXAMPLES] [SEED] (defaults 30 and a fixed seed for CI;
# give another seed, or "random", to explore).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
seed=${2:-20261203}
bin=.build/release/auscult
[ -x "$bin" ] || swift build -c release --product auscult
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/clips"
cp data/clips/jfk.wav data/clips/ps_cards_003.wav "$work/clips/"
"$bin" index --neurons encoder.blocks.2.mlp.hook_post --data "$work/clips" --out "$work/neurons.sqlite" >/dev/null 2>&1
"$bin" studio --index "$work/neurons.sqlite" --port 0 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  grep -q "http://" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
address=$(grep -o 'http://[^ ]*' "$work/server.log" | head -n1)
[ -n "$address" ] || { echo "studio-api-check: the server did not start"; cat "$work/server.log"; exit 1; }
seed_args=(--seed "$seed")
[ "$seed" = "random" ] && seed_args=()
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
st=$(pwd)/.venv-test/bin/st
echo "studio-api-check: schemathesis against ${address}api/openapi.json ($examples examples per operation)"
# First with every parameter generated (mostly unknown indexes and clips), then with the index and
# clip fixed to ones the server has, so the generated queries and bodies reach the model.
"$st" run "${address}api/openapi.json" --checks "$checks" --max-examples "$examples" "${seed_args[@]}" \
  --request-timeout 60 --no-color
mkdir -p "$work/known"
printf '[parameters]\n"path.index" = "neurons"\n"path.clip" = "jfk"\n' >"$work/known/schemathesis.toml"
(cd "$work/known" && "$st" run "${address}api/openapi.json" --checks "$checks" --max-examples "$examples" \
  "${seed_args[@]}" --request-timeout 60 --no-color)
kill -0 "$server" 2>/dev/null || { echo "studio-api-check: the server died"; cat "$work/server.log"; exit 1; }
