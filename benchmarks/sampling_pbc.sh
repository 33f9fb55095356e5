#!/usr/bin/env bash
# Class balancing on PBC's 13 fine labels, CPU preset, measured the honest way:
#
# 1. Nested selection at equal compute: `raycells cv --search "sampling.policy=none|oversample|sqrt|
#    class-weighted"` with `--sampling none,same_length=true`. Inside every outer fold a Ray Tune
#    search on that fold's training part alone (trials scored on its inner validation split)
#    picks the policy; the winner is trained again on the training part and tested once on the
#    fold. same_length keeps every policy's epoch as long as one pass over the training part, so
#    no policy gets more gradient steps than another: a difference is balance, not compute.
# 2. Baseline: `raycells cv` without balancing on the same fold plan (--folds-from), paired fold
#    by fold with the nested run (Nadeau-Bengio corrected t-test, raycells report's comparison).
#
# The nested run's mean ± std estimates the whole procedure (search + training). Takes about four
# times a plain 5-fold run (four policies searched per fold, ASHA stopping the poor ones, plus the
# retraining): roughly 4-5 hours on 2 cores. Started again after a stop, it goes on where it
# stopped (finished searches and folds are kept). EPOCHS and FOLDS override the preset's 18 and 5.
# Writes benchmarks/results/sampling_pbc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
epochs=${EPOCHS:-18}
folds=${FOLDS:-5}
nested=runs/bench-nested-pbc-fine
baseline=runs/bench-cv-pbc-fine-none
common=(--data ../shared/data/pbc --labels fine --preset cpu --folds "$folds" --epochs "$epochs")
stage "$nested" "$folds" .venv/bin/raycells cv "${common[@]}" --sampling "none,same_length=true" \
  --search "sampling.policy=none|oversample|sqrt|class-weighted"
nested_seconds=$STAGE_SECONDS
stage "$baseline" "$folds" .venv/bin/raycells cv "${common[@]}" --folds-from "$nested"
baseline_seconds=$STAGE_SECONDS
{
  .venv/bin/python benchmarks/run_summary.py "$baseline" "$baseline_seconds" "raycells cv --labels fine (sampling none)"
  .venv/bin/python benchmarks/run_summary.py "$nested" "$nested_seconds" "raycells cv --labels fine --sampling none,same_length=true --search sampling.policy=none|oversample|sqrt|class-weighted" "$baseline"
} | .venv/bin/python -c '
import json, sys
print(json.dumps({"command": "benchmarks/sampling_pbc.sh", "epochs": int(sys.argv[1]),
                  "folds": int(sys.argv[2]), "none": json.loads(sys.stdin.readline()),
                  "nested": json.loads(sys.stdin.readline())}, indent=1))
' "$epochs" "$folds" | tee benchmarks/results/sampling_pbc.json
