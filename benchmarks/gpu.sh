#!/usr/bin/env bash
# The GPU benchmark: what the paper preset (ResNeXt-50 32x4d at 400x400) gets from one GPU, in
# about 8 minutes on an H100 with 16 cores. Run from the checkout after `make setup`:
#
#   bash benchmarks/gpu.sh OUT            # on a GPU machine
#   SMOKE=1 bash benchmarks/gpu.sh OUT    # every step at toy sizes on a CPU (the test suite)
#
# 1. step.json: the ceiling, a plain loop on GPU-resident images (benchmarks/step.py): fp16 with
#    loss scaling and bf16, batch 32/64/128, with and without Kornia; images/s, peak memory.
# 2. throughput.json: the raycells path, fold 0 of the paper preset for 2 epochs (oversampled to
#    TARGET images per class, so that an epoch is short), against the plain loop on the same
#    cached images (benchmarks/throughput.py); images/s and data wait from history.csv.
#    throughput_held.json: the same with the training part held on the GPU (--images-on-device:
#    read once in the first epoch, no data feed in the second).
# 3. feed.json: the data feed onto the GPU with nothing consuming it, CPU-ms per image
#    (benchmarks/feed.py).
# DATA: an image folder (default ../shared/data/pbc; else the synthetic demo images, upscaled:
# the speed does not depend on what the pictures show). Each step has its own time limit; a step
# that fails or times out is logged and the next one runs. Record the figures in RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu.sh OUT}
PY=${PY:-.venv/bin/python}
SMOKE=${SMOKE:-0}
TARGET=${TARGET:-1500}
mkdir -p "$OUT"
export RAYCELLS_CACHE="$OUT/cache" PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

if [ "$SMOKE" = 1 ]; then
  STEP=(--smoke)
  PATH_ARGS=(--model tiny_cnn --image-size 32 --batch-size 16 --epochs 1 --limit 200 --preset demo)
  FEED=(--sizes 32 --images 200 --epochs 1)
else
  STEP=(--model resnext50 --size 400 --batches 32,64,128)
  PATH_ARGS=(--model resnext50 --image-size 400 --batch-size 32 --epochs 2 --limit 4000
             --preset paper --sampling "oversample,target=$TARGET")
  FEED=(--sizes 400 --images 3000 --epochs 2)
fi
DATA=${DATA:-../shared/data/pbc}
if [ ! -d "$DATA" ]; then
  DATA="$OUT/demo"
  "$PY" -c "import sys; from raycells.data.demo import write_demo; write_demo(sys.argv[1])" "$DATA"
fi

log "machine: $(nproc) CPUs; $("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU", "torch", torch.__version__)')"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"

run() {  # run NAME SECONDS SCRIPT ARGS...: the script's last line (JSON) goes to OUT/NAME.json
  local name=$1 limit=$2
  shift 2
  log "$name: $*"
  if timeout "$limit" "$PY" "$@" > "$OUT/$name.out" 2>> "$LOG"; then
    tail -n 1 "$OUT/$name.out" > "$OUT/$name.json"
    log "$name: done"
  else
    log "$name: FAILED or timed out after $limit s (see $LOG)"
  fi
}

run step 120 benchmarks/step.py "${STEP[@]}"
run throughput 150 benchmarks/throughput.py --data "$DATA" "${PATH_ARGS[@]}"
run throughput_held 120 benchmarks/throughput.py --data "$DATA" "${PATH_ARGS[@]}" --images-on-device
run feed 90 benchmarks/feed.py --data "$DATA" "${FEED[@]}"
log "finished; results in $OUT/*.json"
