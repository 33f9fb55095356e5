"""Training throughput: the Ray pipeline (Ray Data -> Ray Train worker, Kornia on the worker)
against a plain single-process PyTorch loop over the same cached images, model and augmentation.

    .venv/bin/python benchmarks/throughput.py --data ../shared/data/pbc --epochs 3

Both sides train the same model from the same decoded-image cache with the same batch size and
augmentation (`--augment off` disables it on both). On a GPU the plain loop holds every image on
the GPU already, with the worker's mixed precision and channels-last layout: the ceiling for
any data pipeline. The Ray figure is the median of the per-epoch images/s that the training loop
records in history.csv (training pass only), the plain figure the median over the same number of
epochs. Prints one JSON line; results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raycells.cli.options import parse_sampling
from raycells.data.cache import image_cache, images_from_column
from raycells.data.folds import fold_parts
from raycells.data.index import index_dataset
from raycells.runs.cv import run_cv
from raycells.settings import AugmentSettings, build_settings
from raycells.train.augment import Augmenter
from raycells.train.inputs import prepare_images
from raycells.train.models import create_model
from raycells.train.precision import autocast, choose_precision


def plain_loop(cache: Path, rows: np.ndarray, labels: np.ndarray, *, model_name: str, size: int,
               batch_size: int, epochs: int, classes: int, threads: int,
               augment: AugmentSettings) -> list[float]:
    import pyarrow.parquet as pq

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    table = pq.read_table(cache)
    order = np.argsort(table.column("row").to_numpy())
    images = torch.from_numpy(images_from_column(table.column("image"), size)[order][rows].copy()).to(device)
    targets = torch.from_numpy(labels[rows]).to(device)
    model = create_model(model_name, classes).to(device)
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    precision = choose_precision("auto", device)  # as the training worker chooses
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    augmenter = Augmenter(augment).to(device) if augment.enabled else None
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for index in torch.randperm(len(images), device=device).split(batch_size):
            if len(index) < batch_size:
                break
            x = prepare_images(images[index], augmenter, channels_last=on_gpu)
            with autocast(precision, device):
                loss = loss_fn(model(x), targets[index].long())
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(index)
        if on_gpu:
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - start))
    return rates


def _tracked_epochs(run: Path) -> int | None:
    """How many epochs the run's MLflow record holds (None: tracking was off): the Ray side is
    measured with its record being written, as every run is."""
    if not (run / "mlflow.db").is_file():
        return None
    from mlflow.tracking import MlflowClient

    from raycells.runs.rundir import RunDir
    from raycells.runs.tracking import local_uri

    client = MlflowClient(tracking_uri=local_uri(RunDir(run)))
    folds = [r for r in client.search_runs([client.get_experiment_by_name("raycells").experiment_id])
             if "mlflow.parentRunId" in r.data.tags]
    return sum(len(client.get_metric_history(r.info.run_id, "val_macro_f1")) for r in folds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/pbc")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--augment", choices=("on", "off"), default="on")
    parser.add_argument("--limit", type=int, help="use this many images (a seeded sample)")
    parser.add_argument("--preset", default="cpu", help="the settings' starting point")
    parser.add_argument("--sampling", help="the training part's sampling (default: the preset's)")
    parser.add_argument("--images-on-device", action="store_true",
                        help="hold the training part on the worker's device (no data feed)")
    args = parser.parse_args()
    augment = AugmentSettings() if args.augment == "on" else AugmentSettings.off()

    experiment, placement = build_settings(preset=args.preset, flags={
        "data": args.data, "model": args.model, "image_size": args.image_size,
        "batch_size": args.batch_size, "epochs": args.epochs, "folds": 5,
        "sampling": parse_sampling(args.sampling) if args.sampling else None,
        "augment": "off" if args.augment == "off" else None,
        "images_on_device": args.images_on_device or None})
    manifest = index_dataset(args.data)
    if args.limit:
        manifest.frame = manifest.frame.sample(n=args.limit, random_state=0).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_cv(Path(tmp) / "run", experiment, placement, manifest=manifest, only_folds=[0])
        history = pd.read_csv(result.run_dir / "fold-0" / "history.csv")
        ray_rates = history["images_per_s"].tolist()
        plan = pd.read_parquet(result.run_dir / "folds.parquet")
        tracked = _tracked_epochs(result.run_dir)

    classes = sorted(plan["label"].unique())
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    cache = image_cache(manifest.frame, args.image_size)  # built by the run above: no decoding
    rows = fold_parts(plan, 0)["train"]
    plain_rates = plain_loop(cache, rows, labels, model_name=args.model, size=args.image_size,
                             batch_size=args.batch_size, epochs=args.epochs, classes=len(classes),
                             threads=args.threads, augment=augment)
    ray_median, plain_median = statistics.median(ray_rates), statistics.median(plain_rates)
    print(json.dumps({
        "data": args.data, "model": args.model, "image_size": args.image_size,
        "batch_size": args.batch_size, "epochs": args.epochs, "augment": args.augment,
        "train_images": len(rows),
        "ray_images_per_s": round(ray_median, 1), "plain_images_per_s": round(plain_median, 1),
        "ratio": round(ray_median / plain_median, 3),
        "ray_per_epoch": [round(r, 1) for r in ray_rates],
        "plain_per_epoch": [round(r, 1) for r in plain_rates],
        "ray_train_seconds": history["train_seconds"].round(2).tolist(),
        "ray_data_wait_seconds": history["data_wait_seconds"].round(2).tolist(),
        "ray_feed": history["feed"].tolist(), "ray_precision": history["precision"].tolist(),
        "mlflow_epochs_logged": tracked,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                   + (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
    }))


if __name__ == "__main__":
    main()
