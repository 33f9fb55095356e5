#!/usr/bin/env bash
# Transfer against scratch on PBC, CPU preset. Source: a 5-fold run on the AML samples in
# ../shared/data/matek-samples (ResNet-18, 64x64). Target: ../shared/data/pbc on the fold plan of
# runs/bench-cv-pbc (the scratch run of benchmarks/cv_pbc.sh: run that first), so that the
# comparison pairs the two runs fold by fold. Started again after a stop, it goes on where it
# stopped. Writes benchmarks/results/transfer_pbc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
scratch=runs/bench-cv-pbc
source_run=runs/bench-aml-source
out=runs/bench-transfer-pbc
[ -f "$scratch/fold-4/metrics.json" ] || { echo "run benchmarks/cv_pbc.sh first: $scratch is not finished" >&2; exit 2; }
stage "$source_run" 5 .venv/bin/raycells cv --data ../shared/data/matek-samples/AML-Cytomorphology_LMU --folds 5 --preset cpu
source_seconds=$STAGE_SECONDS
stage "$out" 5 .venv/bin/raycells transfer --from "$source_run" --data ../shared/data/pbc --folds 5 --folds-from "$scratch" "$@"
transfer_seconds=$STAGE_SECONDS
{
  .venv/bin/python benchmarks/run_summary.py "$source_run" "$source_seconds" "raycells cv (source, AML samples)"
  .venv/bin/python benchmarks/run_summary.py "$out" "$transfer_seconds" "raycells transfer" "$scratch"
} | .venv/bin/python -c 'import json, sys; print(json.dumps({"command": "benchmarks/transfer_pbc.sh", "source": json.loads(sys.stdin.readline()), "transfer": json.loads(sys.stdin.readline())}, indent=1))' \
  | tee benchmarks/results/transfer_pbc.json
