#!/usr/bin/env python3
"""Times two Auscult binaries (an earlier commit and this one) stage by stage, alternating them
round by round so drift on a shared machine hits both alike; prints each stage's best time (or
best rate) per binary and the ratio this/earlier. Run through scripts/bench-commits.sh."""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = sorted(glob.glob(os.path.join(ROOT, "data/clips/*.wav")))
DATA = os.path.join(ROOT, "data/clips")


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)


def core(binary, model):
    """`auscult bench` stages on one model: seconds for each (lower is better)."""
    r = json.loads(run([binary, "bench", "--model", model, "--stages", "mel,encoder,transcribe,hooks,gradient",
                        "--repeats", "3", "--batch-size", "16"] + CLIPS).stdout)
    return {f"{model} mel": r["mel_s"], f"{model} encoder": r["encoder_s"], f"{model} transcribe": r["transcribe_s"],
            f"{model} hooks (cache every residual)": r["hooks"]["cache_resid_s"],
            f"{model} forward+backward": r["gradient"]["forward_backward_s"]}


def sweep(binary):
    out = tempfile.mkdtemp(prefix="auscult-sweep-")
    try:
        t = time.perf_counter()
        run([binary, "ablate", "--data", DATA, "--out", out, "--fresh", "--modes", "zero,resample"])
        return {"tiny.en sweep (ablate zero,resample)": time.perf_counter() - t}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def sae(binary):
    work = tempfile.mkdtemp(prefix="auscult-sae-")
    try:
        store, out = os.path.join(work, "store"), os.path.join(work, "sae")
        t = time.perf_counter()
        run([binary, "collect", "--hook", "encoder.blocks.2.hook_resid_post", "--data", DATA, "--out", store,
             "--dtype", "f32"])
        collect = time.perf_counter() - t
        run([binary, "train-sae", "--store", store, "--out", out, "--arch", "topk", "--k", "32", "--expansion", "8",
             "--steps", "300", "--batch-size", "512", "--lr", "1e-3", "--warmup", "30"])
        rate = json.load(open(os.path.join(out, "summary.json")))["rows_per_second"]
        return {"tiny.en collect": collect, "tiny.en train-sae (s per 100k rows)": 1e5 / rate}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--head", required=True)
    ap.add_argument("--base-name", default="base")
    ap.add_argument("--head-name", default="head")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stages", default="core,sweep,sae")
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    best = {"base": {}, "head": {}}
    total = args.rounds * 2
    started, done = time.perf_counter(), 0
    for r in range(args.rounds):
        # Alternate which binary goes first, so neither always runs on a warmer or cooler machine.
        for side in (["base", "head"] if r % 2 == 0 else ["head", "base"]):
            binary = args.base if side == "base" else args.head
            times = {}
            if "core" in stages:
                for model in ["tiny.en", "base"]:
                    times.update(core(binary, model))
            if "sweep" in stages:
                times.update(sweep(binary))
            if "sae" in stages:
                times.update(sae(binary))
            for k, v in times.items():
                best[side][k] = min(v, best[side].get(k, float("inf")))
            done += 1
            el = time.perf_counter() - started
            print(f"\rrounds {done}/{total}  {done / el * 60:.2f}/min  ETA {(total - done) * el / done:.0f}s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{'stage (best of ' + str(args.rounds) + ' rounds, seconds)':48} {args.base_name:>10} {args.head_name:>10}  ratio")
    worst = 0.0
    for k in best["head"]:
        b, h = best["base"][k], best["head"][k]
        worst = max(worst, h / b)
        print(f"{k:48} {b:10.3f} {h:10.3f}  {h / b:5.3f}x")
    print(f"slowest ratio {worst:.3f}x (within 5 % when <= 1.05)")


if __name__ == "__main__":
    main()
