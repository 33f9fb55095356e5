#!/usr/bin/env bash
# PBC network -> the 160 AML samples against scratch, at equal optimizer steps (issue 31, item 6).
# Replaces transfer_aml.sh's comparison, where batch 64 on ~115 training images made one step an
# epoch (scratch ~18 steps in all, each transfer phase ~10).
#
# Source: ResNet-18 at 64x64 on PBC's 13 fine labels, 6 epochs, CPU preset, fold 0 only
#   (benchmarks/one_fold.py; about 10 minutes here).
# Target: the 160 Munich AML sample images (15 classes, 10-11 each), 5 folds, batch 16 (7 steps
#   an epoch on a fold's ~115 training images), EPOCHS steps' worth of epochs for every run:
#   1. scratch:            raycells cv, CPU preset, EPOCHS epochs
#   2. transfer:           raycells transfer from the source, 10 head epochs + EPOCHS-10 fine-tuning
#   3. transfer, searched: the same, the fine-tuning rate chosen inside every fold (--search,
#                          scored on the fold's inner validation split only)
# Scratch's rate is not searched (a search costs about four runs here): a searched transfer
# against a fixed scratch favours the transfer by whatever the search finds.
# All on the fold plan of 1 (--folds-from): the report pairs them fold by fold (Nadeau-Bengio).
# Started again after a stop, it goes on where it stopped. Writes
# benchmarks/results/transfer_aml_fair.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
epochs=${EPOCHS:-40}
aml=../shared/data/matek-samples/AML-Cytomorphology_LMU
source_run=runs/bench-pbc-fine-fold0
scratch=runs/bench-fair-scratch
transfer=runs/bench-fair-transfer
transfer_searched=runs/bench-fair-transfer-search
common=(--data "$aml" --folds 5 --batch-size 16 --seed 0)
if [ ! -f "$source_run/fold-0/metrics.json" ]; then
  .venv/bin/python benchmarks/one_fold.py "$source_run" --fold 0 --data ../shared/data/pbc \
    --labels fine --epochs 6 | tee "$source_run.log"
fi
stage "$scratch" 5 .venv/bin/raycells cv "${common[@]}" --preset cpu --epochs "$epochs"
scratch_seconds=$STAGE_SECONDS
stage "$transfer" 5 .venv/bin/raycells transfer --from "$source_run" --fold 0 "${common[@]}" \
  --folds-from "$scratch" --head-epochs 10 --epochs $((epochs - 10))
transfer_seconds=$STAGE_SECONDS
stage "$transfer_searched" 5 .venv/bin/raycells transfer --from "$source_run" --fold 0 \
  "${common[@]}" --folds-from "$scratch" --head-epochs 10 --epochs $((epochs - 10)) \
  --search "lr=1e-5|1e-4|1e-3"
transfer_searched_seconds=$STAGE_SECONDS
{
  .venv/bin/python -c 'import json, sys; m = json.load(open(sys.argv[1] + "/fold-0/metrics.json")); print(json.dumps({"run": sys.argv[1], "fold": 0, "seconds": m["seconds"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}))' "$source_run"
  .venv/bin/python benchmarks/run_summary.py "$scratch" "$scratch_seconds" "raycells cv (scratch)"
  .venv/bin/python benchmarks/run_summary.py "$transfer" "$transfer_seconds" "raycells transfer" "$scratch"
  .venv/bin/python benchmarks/run_summary.py "$transfer_searched" "$transfer_searched_seconds" \
    "raycells transfer --search lr" "$scratch"
  .venv/bin/python benchmarks/run_summary.py "$transfer_searched" "$transfer_searched_seconds" \
    "raycells transfer --search lr" "$transfer"
} | .venv/bin/python -c 'import json, sys; lines = [json.loads(line) for line in sys.stdin]; print(json.dumps({"command": "benchmarks/transfer_aml_fair.sh", "epochs": int(sys.argv[1]), "source": lines[0], "scratch": lines[1], "transfer": lines[2], "transfer_searched": lines[3], "searched_against_fixed_transfer": lines[4]["against"]}, indent=1))' "$epochs" \
  | tee benchmarks/results/transfer_aml_fair.json
