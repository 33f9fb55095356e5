#!/usr/bin/env bash
# Class balancing on PBC's 13 fine labels, CPU preset: `raycells tune` picks the best of the
# balancing policies on fold 0's inner validation split, then 5-fold CV compares no balancing
# with that policy on the same fold plan (per-class sensitivity and macro F1, mean ± std).
# About 5 hours on 2 cores (oversampled epochs are 2.4 times as long); started again after a
# stop, it goes on where it stopped (a search without best.json starts over, so the resumable
# baseline runs first).
# Writes benchmarks/results/sampling_pbc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
search=runs/bench-tune-pbc-fine
baseline=runs/bench-cv-pbc-fine
balanced=runs/bench-cv-pbc-fine-best
stage "$baseline" 5 .venv/bin/raycells cv --data ../shared/data/pbc --labels fine --preset cpu --folds 5
baseline_seconds=$STAGE_SECONDS
if [ ! -f "$search/best.json" ]; then
  rm -rf "$search"
  .venv/bin/raycells tune --data ../shared/data/pbc --labels fine --preset cpu --trial-folds 1 \
    --space "sampling.policy=oversample|sqrt|class-weighted" --out "$search"
fi
# The search's time, from its first file to its last, survives a restart of this script.
tune_seconds=$(( $(stat -c %Y "$search/best.json") - $(stat -c %Y "$search/config.json") ))
# The search scored on fold 0's inner validation split of its own plan: the same plan as the
# baseline's (same images, labels, folds, seed), or the winner could have seen a test image.
.venv/bin/python -c 'import sys, pandas as pd
a, b = (pd.read_parquet(run + "/folds.parquet") for run in sys.argv[1:])
sys.exit(None if a.equals(b) else "the search and the baseline have different fold plans")' "$search" "$baseline"
stage "$balanced" 5 .venv/bin/raycells cv --config "$search/best.json" --folds-from "$baseline"
balanced_seconds=$STAGE_SECONDS
{
  .venv/bin/python benchmarks/run_summary.py "$baseline" "$baseline_seconds" "raycells cv --labels fine (sampling none)"
  .venv/bin/python benchmarks/run_summary.py "$balanced" "$balanced_seconds" "raycells cv --config $search/best.json" "$baseline"
} | .venv/bin/python -c '
import json, sys
search = json.load(open(sys.argv[1] + "/best.json"))
print(json.dumps({"command": "benchmarks/sampling_pbc.sh", "tune_seconds": json.loads(sys.argv[2]),
                  "best": search["best"], "best_validation_score": search["score"],
                  "trials": open(sys.argv[1] + "/trials.csv").read().splitlines(),
                  "none": json.loads(sys.stdin.readline()), "best_policy": json.loads(sys.stdin.readline())}, indent=1))
' "$search" "$tune_seconds" | tee benchmarks/results/sampling_pbc.json
