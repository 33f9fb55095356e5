"""Test accuracy of a finished cv run's best models with and without test-time augmentation.

    .venv/bin/python benchmarks/tta_effect.py runs/bench-cv-pbc

Reads each fold's checkpoint (its best model) and the decoded-image cache, predicts the fold's
test images once plainly and once averaged over the 8 flips and right-angle rotations, and prints
one JSON line with both accuracies per fold and their means. Runs in this process on the CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from raycells.data.cache import image_cache, images_from_column
from raycells.data.manifest import read_manifest
from raycells.runs.rundir import RunDir
from raycells.train.checkpoint import load_checkpoint
from raycells.train.inputs import dihedral_views, prepare_images
from raycells.train.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    run = RunDir(args.run)
    plan = run.read_plan()
    classes = sorted(plan["label"].unique())
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    size = run.read_config()["settings"]["experiment"]["image_size"]
    table = pq.read_table(image_cache(read_manifest(run.manifest).frame, size))
    order = np.argsort(table.column("row").to_numpy())
    images = torch.from_numpy(images_from_column(table.column("image"), size)[order].copy())
    result = {"run": str(args.run), "plain": {}, "tta": {}}
    for fold in sorted(int(p.name.split("-")[1]) for p in run.path.glob("fold-*")):
        checkpoint = load_checkpoint(run.checkpoint(fold))
        model = create_model(checkpoint.model_name, len(classes))
        model.load_state_dict(checkpoint.best_model)
        model.eval()
        rows = np.flatnonzero(plan["fold"].to_numpy() == fold)
        plain, tta = [], []
        with torch.no_grad():
            for batch in np.array_split(rows, max(1, len(rows) // 128)):
                x = prepare_images(images[batch])
                views = [torch.softmax(model(v), dim=1) for v in dihedral_views(x)]
                plain.append(views[0].argmax(1))
                tta.append(torch.stack(views).mean(0).argmax(1))
        truth = labels[rows]
        result["plain"][fold] = float((torch.cat(plain).numpy() == truth).mean())
        result["tta"][fold] = float((torch.cat(tta).numpy() == truth).mean())
    for key in ("plain", "tta"):
        result[f"{key}_mean"] = float(np.mean(list(result[key].values())))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
