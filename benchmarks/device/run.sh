#!/usr/bin/env bash
# The GPU kit: what raycells gets from one GPU, in one command of at most 9 minutes, on a machine
# with no network that has Python 3.12 and a CUDA build of torch (and torchvision) but not Ray or
# Kornia. Before copying the tree there, fetch the wheels it lacks (benchmarks/device/wheels.sh);
# then, from the checkout on the GPU machine:
#
#   OUT=results bash benchmarks/device/run.sh      # JSON files in results/ as each step ends
#   SMOKE=1 bash benchmarks/device/run.sh OUT      # every step at toy sizes, on a CPU, with .venv
#
# Steps, each with its own time limit (a step that fails or runs out of time is logged, and the
# next one runs); nothing is installed but the carried wheels (into /tmp/site, never torch):
#   machine.json    Python, torch, CUDA, the GPU, what imported
#   step.json       the ceiling: the worker's training step (benchmarks/step.py) on images already
#                   on the GPU, paper preset (ResNeXt-50 32x4d, 400 px, SGD, flips and rotations,
#                   bf16), batch 64 then 32 and 128, with and without augmentation; the host waits
#                   CUDA's synchronisation check finds in the step
#   path.json       the raycells path (benchmarks/device/path.py): fold 0 of `raycells cv`, paper
#                   preset, batch 64, 2 epochs of 6,000 drawn images, streamed by Ray Data;
#                   images/s per epoch, data-wait share, from history.csv
#   path_held.json  the same with --images-on-device (the training part held on the GPU), in the
#                   same process and Ray session
#   feed.json       the feed's CPU ms per image (benchmarks/feed.py)
#   log.txt         what each step printed on stderr
# The ~4,000 synthetic images (the speed does not depend on what they show), the image cache
# and the run directories go to WORK (default: a new folder under /tmp), never under OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:?usage: OUT=folder bash benchmarks/device/run.sh, or bash benchmarks/device/run.sh OUT}}
SMOKE=${SMOKE:-0}
BUDGET=${BUDGET:-530}  # seconds for all steps: the kit ends within 9 minutes
WORK=${WORK:-$(mktemp -d /tmp/raycells-device.XXXXXX)}
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/log.txt"
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

if [ "$SMOKE" = 1 ]; then
  PY=${PY:-.venv/bin/python}
  IMAGES=(--largest 40 --smallest 12)
  STEP=(--smoke)
  MODEL=(--model tiny_cnn --image-size 32 --batch-size 16 --epochs 1 --sampling "oversample,target=20")
  FEED=(--sizes 32 --images 200 --epochs 1)
else
  PY=${PY:-python3}
  log "installing the carried wheels into /tmp/site"
  if ! ls benchmarks/device/wheels/*.whl > /dev/null 2>&1; then
    log "no wheels in benchmarks/device/wheels: run benchmarks/device/wheels.sh before copying the tree"
    exit 2
  fi
  timeout 90 "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site benchmarks/device/wheels/*.whl >> "$LOG" 2>&1 \
    || { log "installing the wheels FAILED (see $LOG)"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  IMAGES=(--largest 1600 --smallest 64)
  STEP=(--preset paper --batches 64,32,128)
  MODEL=(--batch-size 64 --epochs 2 --sampling "oversample,target=400")
  FEED=(--sizes 400 --images 3000 --epochs 2)
fi
export RAYCELLS_CACHE="$WORK/cache" PYTHONUNBUFFERED=1

run() {  # run NAME SECONDS COMMAND...: at most SECONDS, and never past the kit's budget
  local name=$1 limit=$2 left
  shift 2
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -lt 15 ]; then log "$name: SKIPPED (the kit's $BUDGET s are spent)"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name (at most $limit s): $*"
  if timeout "$limit" "$@" 2>> "$LOG"; then
    log "$name: done"
  else
    log "$name: FAILED or timed out after $limit s (see $LOG)"
  fi
}

run machine 30 "$PY" benchmarks/device/machine.py "$OUT/machine.json"
run images 60 "$PY" -c "import sys; from raycells.data.demo import write_demo
write_demo(sys.argv[1], largest=int(sys.argv[2]), smallest=int(sys.argv[3]))" \
  "$WORK/images" "${IMAGES[1]}" "${IMAGES[3]}"
run step 130 "$PY" benchmarks/step.py "${STEP[@]}" --out "$OUT/step.json"
run path 270 "$PY" benchmarks/device/path.py "$WORK/images" "$WORK/path" "${MODEL[@]}" \
  --out "$OUT/path.json" --held "$OUT/path_held.json"
run feed 80 bash -c '"$1" benchmarks/feed.py --data "$2" "${@:4}" | tail -n 1 > "$3"' feed \
  "$PY" "$WORK/images" "$OUT/feed.json" "${FEED[@]}"
[ "$SMOKE" = 1 ] && rm -rf "$WORK"
log "finished in $(( $(date +%s) - START )) s; results in $OUT"
