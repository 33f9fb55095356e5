#!/usr/bin/env bash
# 5-fold cross-validation on ../shared/data/pbc with the CPU preset (ResNet-18, 64x64, 18 epochs, test-time augmentation),
# timed; the run directory goes to runs/bench-cv-pbc and the summary to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/bench-cv-pbc
rm -rf "$out"
start=$(date +%s)
.venv/bin/raycells cv --data ../shared/data/pbc --folds 5 --preset cpu --out "$out" "$@"
end=$(date +%s)
.venv/bin/python benchmarks/run_summary.py "$out" "$((end - start))" benchmarks/cv_pbc.sh \
  | tee benchmarks/results/cv_pbc.json
