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
.venv/bin/python - "$out" "$((end - start))" <<'PY' | tee benchmarks/results/cv_pbc.json
import json, sys
from pathlib import Path
from raycells.metrics import summarize_folds
run, seconds = Path(sys.argv[1]), int(sys.argv[2])
per_fold = {int(p.parent.name.split("-")[1]): json.loads(p.read_text()) for p in run.glob("fold-*/metrics.json")}
s = summarize_folds(per_fold)
print(json.dumps({"command": "benchmarks/cv_pbc.sh", "wall_seconds": seconds, "folds": s["folds"],
                  "accuracy": s["accuracy"], "balanced_accuracy": s["balanced_accuracy"],
                  "macro_f1": s["macro_f1"], "ddof": s["ddof"],
                  "fold_seconds": [per_fold[k]["seconds"] for k in sorted(per_fold)]}))
PY
