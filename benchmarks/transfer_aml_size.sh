#!/usr/bin/env bash
# Is the 64x64 input what holds the PBC -> AML-samples transfer back (issue 21)? The same
# benchmark as transfer_aml.sh, both sides at SIZE (default 128) pixels:
#
# 1. Source: ResNet-18 at SIZE on PBC's 13 fine labels, 6 epochs, CPU preset, fold 0 of the
#    plan of runs/bench-cv-pbc-fine-none only (the fold transfer_aml.sh's source took: same
#    training images; one fold instead of five keeps it to about half an hour here).
# 2. From scratch at SIZE on the AML samples, on the fold plan of runs/bench-aml-scratch.
# 3. Transfer at SIZE from the source's fold 0, same plan.
# The report pairs 3 with 2, and 3 with transfer_aml.sh's 64-pixel transfer (same folds).
# Run benchmarks/transfer_aml.sh first. Started again after a stop, it goes on where it stopped.
# Writes benchmarks/results/transfer_aml-size<SIZE>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
size=${SIZE:-128}
aml=../shared/data/matek-samples/AML-Cytomorphology_LMU
source_run=runs/bench-cv-pbc-fine-$size
scratch=runs/bench-aml-scratch-$size
out=runs/bench-transfer-aml-$size
for run in runs/bench-cv-pbc-fine-none runs/bench-aml-scratch runs/bench-transfer-aml; do
  [ -f "$run/fold-0/metrics.json" ] || {
    echo "run benchmarks/transfer_aml.sh first: $run is not finished" >&2; exit 2; }
done
if [ ! -f "$source_run/fold-0/metrics.json" ]; then
  .venv/bin/python benchmarks/one_fold.py "$source_run" --fold 0 --data ../shared/data/pbc \
    --labels fine --epochs 6 --image-size "$size" --folds-from runs/bench-cv-pbc-fine-none \
    | tee "$source_run.log"
fi
stage "$scratch" 5 .venv/bin/raycells cv --data "$aml" --preset cpu --image-size "$size" \
  --folds-from runs/bench-aml-scratch
scratch_seconds=$STAGE_SECONDS
stage "$out" 5 .venv/bin/raycells transfer --from "$source_run" --fold 0 --data "$aml" \
  --folds-from runs/bench-aml-scratch
transfer_seconds=$STAGE_SECONDS
{
  .venv/bin/python -c 'import json, sys; m = json.load(open(sys.argv[1] + "/fold-0/metrics.json")); print(json.dumps({"run": sys.argv[1], "fold": 0, "seconds": m["seconds"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}))' "$source_run"
  .venv/bin/python benchmarks/run_summary.py "$scratch" "$scratch_seconds" "raycells cv --image-size $size (scratch)"
  .venv/bin/python benchmarks/run_summary.py "$out" "$transfer_seconds" "raycells transfer (from $size-pixel fold 0)" "$scratch"
  .venv/bin/python benchmarks/run_summary.py "$out" "$transfer_seconds" "raycells transfer (from $size-pixel fold 0)" runs/bench-transfer-aml
} | .venv/bin/python -c 'import json, sys; lines = [json.loads(line) for line in sys.stdin]; print(json.dumps({"command": "benchmarks/transfer_aml_size.sh", "size": int(sys.argv[1]), "source": lines[0], "scratch": lines[1], "transfer": lines[2], "transfer_against_64": lines[3]["against"]}, indent=1))' "$size" \
  | tee "benchmarks/results/transfer_aml-size$size.json"
