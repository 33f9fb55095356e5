"""Train one fold of a cross-validation and leave the others untrained: a source network for a
transfer benchmark then costs one fold, not five. Started again on OUT, it resumes that fold.

    python benchmarks/one_fold.py OUT --fold 0 --data DIR [--labels fine] [--epochs N]
        [--image-size N] [--folds-from RUN]

CPU preset otherwise. Prints the fold's wall time (seconds) when it trained from the start.
"""

import argparse
import time
from pathlib import Path

from raycells.data.index import index_dataset
from raycells.runs.cv import run_cv
from raycells.settings import build_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--data", required=True)
    parser.add_argument("--labels")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--folds-from")
    args = parser.parse_args()
    experiment, placement = build_settings(preset="cpu", flags={
        "data": str(Path(args.data).resolve()), "labels": args.labels, "epochs": args.epochs,
        "image_size": args.image_size, "folds_from": args.folds_from})
    resume = (args.out / "config.json").is_file()
    started = time.monotonic()
    run_cv(args.out, experiment, placement, resume=resume, only_folds=[args.fold],
           manifest=None if resume else index_dataset(experiment.data),
           events=lambda kind, **info: print(kind, flush=True) if kind.startswith("fold") else None)
    print("null" if resume else round(time.monotonic() - started))


if __name__ == "__main__":
    main()
