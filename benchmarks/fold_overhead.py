"""What a fold costs beyond its training: 2-fold cross-validations of the tiny CNN (32x32, one
epoch) on 12 real PBC images per class, several in one Ray session, each fold's wall time from
start to metrics.json. With almost nothing to train, the time is Ray Train starting and ending
the fold's worker group, Ray Data starting its streams, and predicting the test part: the cost
that every fold of every run pays, and most of the test suite's time. On Linux, also the CPU
seconds the whole machine spent on each run (all of Ray's processes), from /proc/stat: on a
small machine a fold's start-up is CPU-bound, so these decide how many folds fit in an hour.

    python benchmarks/fold_overhead.py --data ../shared/data/pbc [--runs 3] [--epochs 1] [--out FILE.json]

--epochs N trains each fold N epochs: the difference from one epoch is what an epoch costs
beyond its training steps (its streams, validation, checkpoint and report).

Prints one line per run and, with --out, writes the fold times, CPU seconds and medians as JSON.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from raycells.data.index import index_dataset
from raycells.data.manifest import Manifest
from raycells.runs.cv import run_cv
from raycells.settings import build_settings
from raycells.train.trainer import init_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    experiment, placement = build_settings(flags={
        "model": "tiny_cnn", "image_size": 32, "batch_size": 16, "folds": 2, "epochs": args.epochs,
        "lr": 0.01, "data": str(Path(args.data).resolve()), "tracking": False})
    full = index_dataset(experiment.data)
    manifest = Manifest(frame=full.frame.groupby("label").head(12).reset_index(drop=True),
                        root=full.root, layout=full.layout, source=full.source)
    init_ray(placement)
    folds: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            out = Path(scratch) / f"run-{run}"
            started, busy = time.monotonic(), machine_cpu_seconds()
            run_cv(out, experiment, placement, manifest=manifest)
            if busy is not None:
                cpu.append(round(machine_cpu_seconds() - busy, 1))
            seconds = [json.loads((out / f"fold-{k}" / "metrics.json").read_text())["seconds"]
                       for k in range(experiment.folds)]
            folds += seconds
            used = f", {cpu[-1]} s of CPU" if cpu else ""
            print(f"run {run + 1}: {time.monotonic() - started:.1f} s{used}, folds {seconds} s",
                  flush=True)
    print(f"median fold: {statistics.median(folds):.1f} s over {len(folds)} folds"
          + (f"; median run: {statistics.median(cpu):.1f} s of CPU" if cpu else ""))
    if args.out:
        args.out.write_text(json.dumps({
            "images": len(manifest.frame), "epochs": args.epochs, "fold_seconds": folds,
            "median_fold_seconds": statistics.median(folds), "run_cpu_seconds": cpu,
            "median_run_cpu_seconds": statistics.median(cpu) if cpu else None}, indent=1))


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since it started (Linux), or None."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


if __name__ == "__main__":
    main()
