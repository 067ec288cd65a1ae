"""Shared fixtures of the interoperability tests: the `auscult` binary, the bundled clips, and
models converted once per session with `auscult convert`."""
import json
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
AUSCULT = ROOT / ".build" / "release" / "auscult"
CLIPS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "data" / "clips").glob("*.wav"))


def auscult(*args):
    """Runs the release `auscult` binary from the repository root and returns its stdout."""
    if not AUSCULT.exists():
        pytest.fail(f"{AUSCULT} is missing: build first (scripts/test.sh does)")
    run = subprocess.run([str(AUSCULT), *args], cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"auscult {' '.join(args)} failed ({run.returncode}):\n{run.stderr}")
    return run.stdout


def transcribe(model, clips):
    """Auscult's greedy window-mode transcripts of `clips`, by file: tokens and text."""
    extra = ["--language", "en"] if model == "base" else []
    out = auscult("transcribe", "--model", model, "--format", "jsonl", "--mode", "window", *extra, *clips)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["file"]: row for row in rows}


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """`converted(model, dtype)`: the directory `auscult convert` wrote for it (made once)."""
    made = {}

    def make(model, dtype="f32"):
        if (model, dtype) not in made:
            out = tmp_path_factory.mktemp(f"{model}-{dtype}")
            auscult("convert", "--model", model, "--dtype", dtype, "--out", str(out))
            made[(model, dtype)] = out
        return made[(model, dtype)]

    return make
