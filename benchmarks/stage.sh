# Sourced by the long benchmark scripts: run one stage of a benchmark so that a script stopped
# part-way (a session's end) can be started again and goes on where it stopped.
#
#   stage DIR FOLDS raycells cv|transfer ARGS...   # starts DIR, resumes it, or skips it if finished
#
# Sets STAGE_SECONDS to the stage's wall time when it ran start to end in this invocation, and to
# "null" when it was resumed or already finished (its folds' own seconds are in their metrics.json).

stage() {
  local dir=$1 folds=$2
  shift 2
  local finished
  finished=$(ls "$dir"/fold-*/metrics.json 2>/dev/null | wc -l) || true  # none yet: ls fails
  if [ -f "$dir/config.json" ] && [ "$finished" -ge "$folds" ]; then
    STAGE_SECONDS=null
  elif [ -f "$dir/config.json" ]; then
    "$@" --resume --out "$dir"
    STAGE_SECONDS=null
  else
    local start
    start=$(date +%s)
    "$@" --out "$dir"
    STAGE_SECONDS=$(( $(date +%s) - start ))
  fi
}
