#!/usr/bin/env bash
# The main job on the default model (tiny.en) and the bundled clips: an ablation sweep
# (every encoder and decoder block, zero and resample) with transcripts, WER and cross-entropy,
# then the logit lens, encoder lens, attribution and attention views of three clips, then a TopK
# sparse autoencoder on encoder.blocks.2.hook_resid_post (collect, train, evaluate spliced in,
# index its latents with the words they fire on). Writes self-contained HTML reports under out/,
# then serves them in Auscult Studio (neurons of encoder.blocks.2.mlp.hook_post and the SAE's
# latents, with their clips to look at and listen to) at a printed local address.
# Installs what it needs first (scripts/setup.sh).
# --no-serve ends after the reports (for CI); other arguments go to the sweep
# (e.g. --modes zero,mean,resample --donors 2).
set -euo pipefail
cd "$(dirname "$0")/.."
serve=1
args=()
for a in "$@"; do if [ "$a" = "--no-serve" ]; then serve=0; else args+=("$a"); fi; done
set -- ${args[@]+"${args[@]}"}
scripts/setup.sh
swift build -c release --product auscult
mkdir -p out
.build/release/auscult ablate --data data/clips --out out/ablate "$@"
.build/release/auscult lens --data data/clips --limit 3 --out out/lens
# Sparse autoencoder: each step resumes if its output is already there.
.build/release/auscult collect --hook encoder.blocks.2.hook_resid_post --data data/clips --out out/sae/store
.build/release/auscult train-sae --store out/sae/store --arch topk --k 32 --expansion 8 --steps 300 --batch-size 512 \
  --lr 1e-3 --warmup 30 --out out/sae/topk
.build/release/auscult eval-sae --sae out/sae/topk --data data/clips --out out/sae/eval
.build/release/auscult index --sae out/sae/topk --data data/clips --out out/sae/features.sqlite
.build/release/auscult features --index out/sae/features.sqlite --sort density --limit 5
cat > out/index.html <<'HTML'
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Auscult — first run</title>
<style>body{font-family:system-ui,sans-serif;margin:40px;color:#1d232b}a{font-size:18px}li{margin:10px 0}</style></head>
<body><h1>Auscult — first run (tiny.en, bundled clips)</h1><ul>
<li><a href="ablate/report.html">Ablation sweep</a>: every encoder and decoder block, zeroed and resampled, ranked by damage; transcripts side by side.</li>
<li><a href="lens/report.html">Lens</a>: decoder logit lens, encoder lens, direct logit attribution and attention patterns for three clips.</li>
<li><a href="sae/topk/report.html">SAE training</a>: a TopK SAE (k 32, 3072 latents) on encoder.blocks.2.hook_resid_post: loss, FVU, L0, dead latents.</li>
<li><a href="sae/eval/report.html">SAE evaluation</a>: FVU, density histogram, and WER / cross-entropy with the SAE spliced in against the clean and zero-ablated model.</li>
<li>Auscult Studio (<code>auscult studio</code>, served at the end of <code>scripts/demo.sh</code>): every neuron of encoder.blocks.2.mlp.hook_post and SAE latent with its clips drawn on the spectrogram and playable, a clip inspector (upload or record) and steering.</li>
</ul><p>Machine-readable results: <code>ablate/results.json</code>, <code>ablate/summary.json</code>, <code>lens/results.json</code>,
<code>sae/eval/eval.json</code>; the feature index <code>sae/features.sqlite</code> (query it with <code>auscult features --index out/sae/features.sqlite --feature N</code>).</p></body></html>
HTML
echo "open out/index.html (reports: out/ablate/report.html, out/lens/report.html, out/sae/topk/report.html, out/sae/eval/report.html)"
# Auscult Studio over the demo's results (it first indexes the neurons of encoder.blocks.2.mlp.hook_post).
if [ "$serve" = 1 ]; then
  exec .build/release/auscult studio --out out --data data/clips
else
  .build/release/auscult studio --out out --data data/clips --no-serve
fi
