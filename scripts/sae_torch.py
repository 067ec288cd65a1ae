#!/usr/bin/env python3
"""The SAE training of `auscult train-sae`, written plainly in PyTorch, to check and to race it.

Same model and step as Auscult (Sources/AuscultSAE): z = (x - b_dec) W_enc + b_enc; ReLU + L1,
TopK or BatchTopK; loss = mean over rows of ||x_hat - x||^2 (+ l1 * mean sum a) (+ AuxK: the dead
latents' k_aux largest pre-activations reconstruct e = x - x_hat held constant, coefficient c);
gradient of W_dec with each row's parallel component removed; global-norm clipping; Adam with
linear warm-up and a linear decay over the last 20 % of steps; decoder rows renormalised after
the step. Initialisation and shuffling replay Auscult's SplitMix64 draws, so both sides start from
the same weights and see the same batches.

  python scripts/sae_torch.py train --store STORE --steps 300 --batch-size 512 --lr 1e-3 --k 32 --expansion 8
  python scripts/sae_torch.py fixture OUT_DIR     # one-step fixtures for the Swift tests
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch

MASK = (1 << 64) - 1


def splitmix64(seed, count):
    """`count` outputs of SplitMix64 from `seed` (as Auscult's SplitMix64), vectorised."""
    with np.errstate(over="ignore"):
        idx = np.arange(1, count + 1, dtype=np.uint64)
        z = (np.uint64(seed) + idx * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def seeded_normal(seed, count):
    """Auscult's SeededNormal: Box-Muller on (bits >> 11 + 0.5) / 2^53, cos first, then sin."""
    pairs = (count + 1) // 2
    bits = splitmix64(seed, 2 * pairs)
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2 * np.log(u1))
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = r * np.cos(2 * np.pi * u2)
    out[1::2] = r * np.sin(2 * np.pi * u2)
    return out[:count].astype(np.float32)


def shuffled_order(n, seed):
    """Auscult's Fisher-Yates with SplitMix64: i from n-1 down to 1 swaps with next() % (i + 1)."""
    order = list(range(n))
    bits = splitmix64(seed, max(0, n - 1))
    for j, i in enumerate(range(n - 1, 0, -1)):
        k = int(bits[j] % np.uint64(i + 1))
        order[i], order[k] = order[k], order[i]
    return order


def init_params(d_in, d_sae, seed):
    dec = seeded_normal(seed, d_sae * d_in).reshape(d_sae, d_in)
    dec = dec / np.linalg.norm(dec, axis=1, keepdims=True)
    return {"W_enc": torch.tensor(dec.T.copy()), "b_enc": torch.zeros(d_sae),
            "W_dec": torch.tensor(dec), "b_dec": torch.zeros(d_in)}


def topk_mask(v, k):
    idx = v.topk(k, dim=-1).indices
    return torch.zeros_like(v).scatter_(-1, idx, 1.0)


def forward(p, x, arch, k):
    z = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    if arch == "relu":
        a = torch.relu(z)
    elif arch == "topk":
        a = torch.relu(z) * topk_mask(z, k)
    else:  # batchtopk
        a = torch.relu(z) * topk_mask(z.flatten(), k * z.shape[0]).view_as(z)
    return z, a, a @ p["W_dec"] + p["b_dec"]


def loss_fn(p, x, cfg, dead):
    z, a, xhat = forward(p, x, cfg["arch"], cfg["k"])
    b = x.shape[0]
    mse = ((xhat - x) ** 2).sum() / b
    loss, l1, aux = mse, torch.zeros(()), torch.zeros(())
    if cfg["arch"] == "relu":
        l1 = cfg["l1"] * a.sum() / b
        loss = loss + l1
    elif dead is not None and bool(dead.any()):
        k_aux = min(cfg["k_aux"], int(dead.sum()))
        zd = z.masked_fill(~dead, float("-inf"))
        a_aux = torch.relu(zd) * topk_mask(zd, k_aux)
        a_aux = torch.nan_to_num(a_aux, nan=0.0, neginf=0.0)
        e = (x - xhat).detach()
        aux = cfg["aux"] * ((a_aux @ p["W_dec"] - e) ** 2).sum() / b
        loss = loss + aux
    return loss, mse, l1, aux, a


def rate(step, cfg):
    f = 1.0
    if cfg["warmup"] > 0 and step < cfg["warmup"]:
        f = (step + 1) / cfg["warmup"]
    decay_start = int(cfg["steps"] * 0.8)
    if step >= decay_start and cfg["steps"] > decay_start:
        f *= (cfg["steps"] - step) / (cfg["steps"] - decay_start)
    return cfg["lr"] * f


class Trainer:
    def __init__(self, p, cfg):
        self.p = {n: t.clone().requires_grad_(True) for n, t in p.items()}
        self.cfg = cfg
        self.opt = torch.optim.Adam(list(self.p.values()), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
        self.since_fired = torch.zeros(p["W_enc"].shape[1], dtype=torch.long)
        self.step = 0

    def update(self, x):
        cfg, p = self.cfg, self.p
        dead = self.since_fired >= cfg["dead_after"]
        loss, mse, l1, aux, a = loss_fn(p, x, cfg, dead)
        for t in p.values():
            t.grad = None
        loss.backward()
        with torch.no_grad():
            w, g = p["W_dec"], p["W_dec"].grad
            g -= (g * w).sum(1, keepdim=True) * w
            torch.nn.utils.clip_grad_norm_(list(p.values()), cfg["clip"])
            for group in self.opt.param_groups:
                group["lr"] = rate(self.step, cfg)
            self.opt.step()
            w /= w.norm(dim=1, keepdim=True).clamp_min(1e-12)
            fired = (a > 0).any(0)
            self.since_fired = torch.where(fired, torch.zeros_like(self.since_fired), self.since_fired + x.shape[0])
        self.step += 1
        return float(loss.detach()), float(mse.detach()), float(l1.detach()), float(aux.detach()), a.detach()


def load_store(path):
    m = json.load(open(os.path.join(path, "manifest.json")))
    dtype = np.float16 if m["dtype"] == "f16" else np.float32
    shards, rows = {}, []
    for c in m["clips"]:
        if c["shard"] not in shards:
            shards[c["shard"]] = np.memmap(os.path.join(path, c["shard"]), dtype=dtype, mode="r").reshape(-1, m["width"])
        rows.append(np.asarray(shards[c["shard"]][c["offset"]:c["offset"] + c["frames"]], dtype=np.float32))
    return torch.tensor(np.concatenate(rows)), m


def fvu_over(p, data, cfg, chunk=4096):
    err, var = 0.0, 0.0
    mean = data.mean(0)
    with torch.no_grad():
        for i in range(0, data.shape[0], chunk):
            x = data[i:i + chunk]
            _, _, xhat = forward(p, x, cfg["arch"], cfg["k"])
            err += float(((xhat - x) ** 2).sum()); var += float(((x - mean) ** 2).sum())
    return err / var


def train(args):
    torch.set_num_threads(args.threads or torch.get_num_threads())
    data, manifest = load_store(args.store)
    n, d = data.shape
    m = args.d_sae or args.expansion * d
    cfg = {"arch": args.arch, "k": args.k, "l1": args.l1, "k_aux": min(m, max(1, d // 2)), "aux": 1 / 32,
           "lr": args.lr, "warmup": args.warmup, "steps": args.steps, "clip": 1.0, "dead_after": args.dead_after}
    p = init_params(d, m, args.seed)
    p["b_dec"] = data.mean(0)
    t = Trainer(p, cfg)
    order = torch.tensor(shuffled_order(n, args.seed))
    b = min(args.batch_size, n)
    start = time.perf_counter()
    log = []
    for step in range(args.steps):
        idx = order[(torch.arange(b) + step * b) % n]
        x = data[idx]
        loss, mse, l1, aux, a = t.update(x)
        if (step + 1) % 10 == 0 or step + 1 == args.steps:
            log.append({"step": step + 1, "loss": loss, "l0": float((a > 0).sum()) / b,
                        "dead_fraction": float((t.since_fired >= cfg["dead_after"]).float().mean())})
    seconds = time.perf_counter() - start
    result = {"rows_per_s": args.steps * b / seconds, "seconds": seconds, "fvu": fvu_over(t.p, data, cfg),
              "l0": log[-1]["l0"], "dead_fraction": log[-1]["dead_fraction"], "loss": log[-1]["loss"], "rows": n}
    if not getattr(args, "quiet", False):
        print(json.dumps(result))
    return result


def fixture(out_dir):
    """One step of each architecture on a small batch: inputs, the step's state, results."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    b, d, m, k = 24, 12, 40, 4
    x = torch.randn(b, d) * torch.linspace(0.5, 2.0, d) + 0.3
    for arch in ["relu", "topk", "batchtopk"]:
        cfg = {"arch": arch, "k": k, "l1": 0.05, "k_aux": 6, "aux": 1 / 32, "lr": 0.01, "warmup": 4,
               "steps": 100, "clip": 1.0 if arch != "relu" else 1e6, "dead_after": 10}
        p = init_params(d, m, 7)
        p["b_dec"] = x.mean(0)
        t = Trainer(p, cfg)
        # Latents 0, 3, 6, ... have not fired for dead_after rows: AuxK uses them.
        initial = torch.tensor([cfg["dead_after"] if i % 3 == 0 else 0 for i in range(m)])
        t.since_fired = initial.clone()
        loss, mse, l1, aux, _ = t.update(x)
        tensors = {"x": x, "since_fired": initial.float()}
        for name, v in p.items():
            tensors[name + ".before"] = v.detach().clone()
            tensors[name + ".after"] = t.p[name].detach().clone()
        meta = {key: str(value) for key, value in cfg.items()}
        meta.update({"loss": repr(loss), "loss_mse": repr(mse), "loss_l1": repr(l1), "loss_aux": repr(aux), "d_sae": str(m), "seed": "7",
                     "torch": torch.__version__})
        save_file({n: v.contiguous() for n, v in tensors.items()}, os.path.join(out_dir, f"step_{arch}.safetensors"), metadata=meta)
        print(arch, "loss", loss, "mse", mse, "l1", l1, "aux", aux)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--store", required=True)
    tr.add_argument("--arch", default="topk")
    tr.add_argument("--k", type=int, default=32)
    tr.add_argument("--l1", type=float, default=5e-3)
    tr.add_argument("--expansion", type=int, default=8)
    tr.add_argument("--d-sae", type=int)
    tr.add_argument("--steps", type=int, default=300)
    tr.add_argument("--batch-size", type=int, default=512)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=30)
    tr.add_argument("--dead-after", type=int, default=50_000)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int)
    fx = sub.add_parser("fixture")
    fx.add_argument("out")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else fixture(a.out)
