#!/usr/bin/env bash
# The main job on the embedded default model (tiny.en) and the bundled clips: an ablation sweep
# (every encoder and decoder block, zero and resample) with transcripts, WER and cross-entropy,
# then the logit lens, encoder lens, attribution and attention views of three clips. Ends with
# two self-contained HTML reports under out/. Installs what it needs first (scripts/setup.sh).
# Arguments go to the sweep (e.g. --modes zero,mean,resample --donors 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product auscult
mkdir -p out
.build/release/auscult ablate --data data/clips --out out/ablate "$@"
.build/release/auscult lens --data data/clips --limit 3 --out out/lens
cat > out/index.html <<'HTML'
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Auscult — first run</title>
<style>body{font-family:system-ui,sans-serif;margin:40px;color:#1d232b}a{font-size:18px}li{margin:10px 0}</style></head>
<body><h1>Auscult — first run (tiny.en, bundled clips)</h1><ul>
<li><a href="ablate/report.html">Ablation sweep</a>: every encoder and decoder block, zeroed and resampled, ranked by damage; transcripts side by side.</li>
<li><a href="lens/report.html">Lens</a>: decoder logit lens, encoder lens, direct logit attribution and attention patterns for three clips.</li>
</ul><p>Machine-readable results: <code>ablate/results.json</code>, <code>ablate/summary.json</code>, <code>lens/results.json</code>.</p></body></html>
HTML
echo "open out/index.html (reports: out/ablate/report.html, out/lens/report.html)"
