"""A synthetic feature index at the scale the Studio's benchmark asks for (10,000 clips x 6,144
features: 20 top and 20 negative examples, 50 sampled frames and 8 co-active features per top
example, 25 words per clip), in the layout `auscult index` writes (version 2), with an SAE
checkpoint of matching width (random TopK weights in SAELens's layout) for the Studio to load.
The clips' audio files do not exist: the benchmark times feature-page data, which never reads
audio.  Usage: studio_synthetic.py OUT_DIR [CLIPS] [FEATURES]"""
import json, math, os, random, sqlite3, struct, sys

out = sys.argv[1]
n_clips = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
n_feat = int(sys.argv[3]) if len(sys.argv) > 3 else 6_144
d_in = 384
os.makedirs(out + "/sae", exist_ok=True)
rng = random.Random(0)

# SAE: safetensors written by hand (float32, SAELens names and shapes).
def safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, (shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [at, at + len(blob)]}
        blobs.append(blob); at += len(blob)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)
scale = 1 / math.sqrt(d_in)
w = [rng.gauss(0, scale) for _ in range(d_in * n_feat)]
safetensors(out + "/sae/sae_weights.safetensors", {
    "W_enc": ([d_in, n_feat], w), "b_enc": ([n_feat], [0.0] * n_feat),
    "W_dec": ([n_feat, d_in], [w[j * n_feat + i] for i in range(n_feat) for j in range(d_in)]),
    "b_dec": ([d_in], [0.0] * d_in)})
json.dump({"architecture": "topk", "d_in": d_in, "d_sae": n_feat, "k": 32, "hook_name": "encoder.blocks.2.hook_resid_post",
           "model_name": "tiny.en", "dtype": "float32", "apply_b_dec_to_input": True, "normalize_activations": "none"},
          open(out + "/sae/cfg.json", "w"))

path = out + "/synthetic.sqlite"
if os.path.exists(path): os.remove(path)
db = sqlite3.connect(path)
db.executescript("""
PRAGMA journal_mode=WAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE clips(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
    frames INTEGER NOT NULL, transcript TEXT NOT NULL, reference TEXT);
CREATE TABLE words(clip INTEGER NOT NULL, idx INTEGER NOT NULL, word TEXT NOT NULL,
    start_s REAL NOT NULL, end_s REAL NOT NULL, PRIMARY KEY(clip, idx));
CREATE TABLE features(id INTEGER PRIMARY KEY, fired INTEGER NOT NULL, density REAL NOT NULL,
    mean_active REAL, max_value REAL, min_value REAL, sum_active REAL NOT NULL);
CREATE TABLE examples(feature INTEGER NOT NULL, kind TEXT NOT NULL, rank INTEGER NOT NULL,
    clip INTEGER NOT NULL, frame INTEGER NOT NULL, time REAL NOT NULL, value REAL NOT NULL, word TEXT,
    coactive TEXT, PRIMARY KEY(feature, kind, rank));
""")
vocab = ["the", "she", "ship", "wish", "country", "ask", "what", "you", "can", "do", "for", "and", "so", "my",
         "fellow", "americans", "not", "your", "shore", "sure", "fish", "push", "station", "nation", "motion"]
frames_per_clip = 500
rows = n_clips * frames_per_clip
meta = {"kind": "sae", "hook": "encoder.blocks.2.hook_resid_post", "source": os.path.abspath(out + "/sae"),
        "model": "tiny.en", "width": str(n_feat), "top": "20", "samples": "50", "coactive": "8", "version": "2",
        "rows": str(rows), "random": "1"}
db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
db.executemany("INSERT INTO clips VALUES (?, ?, ?, ?, ?, ?)",
               ((c, f"clip_{c:05d}", f"/nonexistent/clip_{c:05d}.wav", frames_per_clip, "synthetic", None)
                for c in range(n_clips)))
db.executemany("INSERT INTO words VALUES (?, ?, ?, ?, ?)",
               ((c, i, rng.choice(vocab), i * 0.4, i * 0.4 + 0.35) for c in range(n_clips) for i in range(25)))
def examples():
    for f in range(n_feat):
        top = sorted((rng.expovariate(1) * 3 for _ in range(20)), reverse=True)
        for kind, values in (("top", top), ("negative", sorted(-rng.expovariate(4) for _ in range(20))),
                             ("sample", [rng.random() * top[0] for _ in range(50)])):
            for rank, v in enumerate(values):
                frame = rng.randrange(frames_per_clip)
                co = " ".join(f"{rng.randrange(n_feat)}:{rng.random() * 4:.4g}" for _ in range(8)) if kind == "top" else None
                yield (f, kind, rank, rng.randrange(n_clips), frame, (frame + 0.5) * 0.02, v, rng.choice(vocab), co)
db.executemany("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", examples())
def features():
    for f in range(n_feat):
        density = 10 ** rng.uniform(-4, -1)
        fired = int(density * rows)
        yield (f, fired, fired / rows, 1.0, 3.0, -0.5, float(fired))
db.executemany("INSERT INTO features VALUES (?, ?, ?, ?, ?, ?, ?)", features())
db.commit()
db.close()
print(json.dumps({"index": path, "sae": out + "/sae", "clips": n_clips, "features": n_feat,
                  "bytes": os.path.getsize(path)}))
