"""The raycells path on this machine: fold 0 of `raycells cv` (Ray Data streaming the cache to a
Ray Train worker, Kornia on the worker's device), with a preset's settings, read back from the
fold's history.csv: images/s of each epoch's training pass and the share of it spent waiting for
data; with `--held`, then the same fold with --images-on-device (the training part held on the
device), in the same Ray session.

    python benchmarks/device/path.py DATA RUNS --preset paper --epochs 2 --batch-size 64 \
        --sampling oversample,target=400 --out path.json [--held path_held.json]

Compare with benchmarks/step.py at the same preset and batch: the same step on images already on
the GPU. Writes (and prints) one JSON object per feed as it finishes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from raycells.cli.options import parse_sampling
from raycells.data.index import index_dataset
from raycells.runs.cv import run_cv
from raycells.settings import build_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an image folder")
    parser.add_argument("runs", type=Path, help="a folder for the run directories")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--model")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sampling", help="instead of the preset's (an epoch's size)")
    parser.add_argument("--out", type=Path, required=True, help="the streamed feed's JSON")
    parser.add_argument("--held", type=Path, help="then the held feed's (--images-on-device) JSON")
    args = parser.parse_args()
    manifest = index_dataset(args.data)
    measure(args, manifest, args.runs / "stream", args.out, held=False)
    if args.held:
        measure(args, manifest, args.runs / "held", args.held, held=True)


def measure(args: argparse.Namespace, manifest, run: Path, out: Path, *, held: bool) -> None:
    experiment, placement = build_settings(preset=args.preset, flags={
        "data": args.data, "model": args.model, "image_size": args.image_size,
        "epochs": args.epochs, "batch_size": args.batch_size, "tracking": False,
        "sampling": parse_sampling(args.sampling) if args.sampling else None,
        "images_on_device": held or None})
    started = time.perf_counter()
    run_cv(run, experiment, placement, manifest=manifest, only_folds=[0])
    history = pd.read_csv(run / "fold-0" / "history.csv")
    result = {
        "command": "benchmarks/device/path.py", "preset": args.preset,
        "model": experiment.model, "image_size": experiment.image_size,
        "batch": experiment.batch_size, "optimizer": experiment.optimizer,
        "augment": {"flip": experiment.augment.flip, "rotate": experiment.augment.rotate,
                    "noise": experiment.augment.noise},
        "images": len(manifest.frame), "feed": history["feed"].tolist(),
        "precision": history["precision"].tolist(),
        "train_images": history["train_images"].tolist(),
        "images_per_s": history["images_per_s"].round(1).tolist(),
        "train_seconds": history["train_seconds"].round(2).tolist(),
        "data_wait_share": (history["data_wait_seconds"] / history["train_seconds"]).round(4).tolist(),
        "val_seconds": history["val_seconds"].round(2).tolist(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available()
        else f"cpu ({platform.machine()})",
    }
    out.write_text(json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
