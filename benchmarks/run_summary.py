"""Print a finished run's scores as one JSON line: mean ± std over its folds, per-fold seconds
and optimizer steps (history.csv), and the wall time measured by the calling script. Used by
the benchmark scripts.

    python benchmarks/run_summary.py RUN_DIR WALL_SECONDS|null COMMAND [BASELINE_RUN]

WALL_SECONDS is null for a run resumed across invocations: then its folds' seconds tell the time.

With BASELINE_RUN, also the comparison against it (paired by fold when both share a fold plan).
"""

import json
import sys
from pathlib import Path

import pandas as pd

from raycells.metrics import summarize_folds
from raycells.report.compare import compare
from raycells.report.scoring import score_run


def main(run: Path, seconds: int | None, command: str, baseline: Path | None) -> dict:
    per_fold = {int(p.parent.name.split("-")[1]): json.loads(p.read_text())
                for p in run.glob("fold-*/metrics.json")}
    s = summarize_folds(per_fold)
    out = {"command": command, "run": str(run), "wall_seconds": seconds, "folds": s["folds"],
           "accuracy": s["accuracy"], "balanced_accuracy": s["balanced_accuracy"],
           "macro_f1": s["macro_f1"], "ddof": s["ddof"],
           "fold_seconds": [per_fold[k]["seconds"] for k in sorted(per_fold)],
           "fold_steps": [int(pd.read_csv(run / f"fold-{k}" / "history.csv")["steps"].sum())
                          for k in sorted(per_fold)],
           "per_class_sensitivity": {code: row["sensitivity"] for code, row in s["per_class"].items()},
           "chosen": {k: per_fold[k]["chosen"] for k in sorted(per_fold) if "chosen" in per_fold[k]}}
    if baseline is not None:
        (comparison,) = compare([score_run(baseline), score_run(run)])
        out["against"] = {"baseline": str(baseline), "paired": comparison.paired,
                          "overall": comparison.overall,
                          "per_class_sensitivity": {code: scores["sensitivity"] for code, scores
                                                    in comparison.per_class.items()}}
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(Path(args[0]), None if args[1] == "null" else int(args[1]), args[2],
                          Path(args[3]) if len(args) > 3 else None)))
