#!/usr/bin/env bash
# Wall time of the default demo run (`raycells cv --folds 5` on the synthetic demo data).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/bench-demo
rm -rf "$out"
start=$(date +%s)
.venv/bin/raycells cv --folds 5 --out "$out"
end=$(date +%s)
echo "{\"command\": \"raycells cv --folds 5\", \"wall_seconds\": $((end - start))}" | tee benchmarks/results/demo_time.json
