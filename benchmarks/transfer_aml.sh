#!/usr/bin/env bash
# Transfer where it should pay off (issue 21): a large source, a small target, CPU preset.
#
# Source: the network of runs/bench-cv-pbc-fine-none, the baseline of benchmarks/sampling_pbc.sh
#   (ResNet-18 at 64x64 trained on ~80 % of PBC's images, its 13 fine labels, no balancing; run
#   that script first, EPOCHS=6 gives the run recorded in RESULTS.md). Its best fold is taken.
# Target: the 160 Munich AML sample images (15 classes, 10-11 each), 5-fold cross-validation.
#
# 1. The domain shift alone: the source's folds predict the AML images whose class has a PBC fine
#    label (raycells evaluate --map aml-to-pbc; LYA, MYO, PMB, MOB and KSC have none).
# 2. From scratch: raycells cv on the AML samples (cpu preset).
# 3. Transfer: raycells transfer from the PBC network on the same fold plan (--folds-from), so the
#    report pairs the two runs fold by fold (Nadeau-Bengio corrected t-test).
# Extra arguments go to the transfer stage (such as --lr 1e-4). Started again after a stop, it
# goes on where it stopped. Writes benchmarks/results/transfer_aml.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/stage.sh
source_run=runs/bench-cv-pbc-fine-none
aml=../shared/data/matek-samples/AML-Cytomorphology_LMU
shift_run=runs/bench-eval-pbc-on-aml
scratch=runs/bench-aml-scratch
out=runs/bench-transfer-aml${SUFFIX:-}
[ -f "$source_run/fold-4/metrics.json" ] || {
  echo "run benchmarks/sampling_pbc.sh first: $source_run is not finished" >&2; exit 2; }
if [ ! -f "$shift_run/fold-0/metrics.json" ]; then
  rm -rf "$shift_run"
  .venv/bin/raycells evaluate --from "$source_run" --data "$aml" --map aml-to-pbc --out "$shift_run"
fi
stage "$scratch" 5 .venv/bin/raycells cv --data "$aml" --folds 5 --preset cpu
scratch_seconds=$STAGE_SECONDS
stage "$out" 5 .venv/bin/raycells transfer --from "$source_run" --data "$aml" --folds 5 \
  --folds-from "$scratch" "$@"
transfer_seconds=$STAGE_SECONDS
.venv/bin/raycells report "$scratch" "$out" > /dev/null
{
  .venv/bin/python -c 'import json, sys; m = json.load(open(sys.argv[1])); print(json.dumps({"command": "raycells evaluate --map aml-to-pbc", "run": sys.argv[2], "images": m["images"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "per_class_sensitivity": {c: r["sensitivity"] for c, r in m["per_class"].items()}}))' "$shift_run/fold-0/metrics.json" "$shift_run"
  .venv/bin/python benchmarks/run_summary.py "$scratch" "$scratch_seconds" "raycells cv (scratch)"
  .venv/bin/python benchmarks/run_summary.py "$out" "$transfer_seconds" "raycells transfer $*" "$scratch"
} | .venv/bin/python -c 'import json, sys; lines = [json.loads(line) for line in sys.stdin]; print(json.dumps({"command": "benchmarks/transfer_aml.sh", "domain_shift": lines[0], "scratch": lines[1], "transfer": lines[2]}, indent=1))' \
  | tee "benchmarks/results/transfer_aml${SUFFIX:-}.json"
