"""The data feed's CPU cost per image: building the decoded-image cache, then three ways of
handing its images to a training loop that does nothing with them.

    .venv/bin/python benchmarks/feed.py --data ../shared/data/pbc --sizes 224,400 --images 2000

- cache build: `raycells.data.cache.image_cache` (decode, crop, resize, write Parquet) into an
  empty cache folder;
- in memory: every image already a uint8 tensor; random batches moved to the device — the floor;
- plain Parquet: the cache's shards read in a random order with pyarrow, batches cut from them;
- raycells: the training worker's own path — `raycells.train.trainer.fold_datasets` (Ray Data:
  read the cache, select the fold's rows, draw the epoch's copies) through Ray Train's dataset
  shard and `raycells.train.feed.EpochBatches` (iter_torch_batches with the worker's batch size,
  local shuffle and prefetch) in a Ray Train worker, nothing sampled (`--sampling` changes that).

Every figure is CPU seconds of all processes (this one, Ray's raylet and workers; from /proc, see
cputime.py) per image delivered, so other load on the machine does not change it the way it
changes images/s. For raycells the steady figure counts an epoch from its first batch to its
last, and each epoch's start-up (from asking for its batches to the first one) is given apart.
Batches go to the GPU when there is one. Prints one JSON line; recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cputime import TreeCpu

from raycells.data.cache import image_cache, images_from_column
from raycells.data.index import index_dataset
from raycells.data.sampling import expected_copies
from raycells.settings import build_settings

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def in_memory(images: torch.Tensor, batch: int, epochs: int, meter: TreeCpu) -> float:
    """CPU ms per image when every image is a tensor in memory already."""
    cpu, count = meter.seconds(), 0
    for _ in range(epochs):
        for index in torch.randperm(len(images)).split(batch):
            count += len(images[index].to(DEVICE, non_blocking=True))
    _synchronize()
    return _ms(meter.seconds() - cpu, count)


def plain_parquet(cache: Path, size: int, batch: int, epochs: int, meter: TreeCpu) -> float:
    """CPU ms per image reading the cache's shards in a random order with pyarrow."""
    shards = sorted(cache.glob("*.parquet"))
    rng = np.random.default_rng(0)
    cpu, count = meter.seconds(), 0
    for _ in range(epochs):
        for shard in rng.permutation(shards):
            table = pq.read_table(shard)
            images = torch.from_numpy(images_from_column(table.column("image"), size))
            for part in images.split(batch):
                count += len(part.to(DEVICE, non_blocking=True))
    _synchronize()
    return _ms(meter.seconds() - cpu, count)


def raycells_feed(cache: Path, size: int, labels: np.ndarray, sampling: str, batch: int,
                  epochs: int, meter: TreeCpu) -> dict:
    """CPU ms per image of the training worker's feed (steady, from each epoch's first batch)
    and each epoch's start-up CPU seconds."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from raycells.train.trainer import fold_datasets

    experiment, _ = build_settings(flags={"image_size": size, "batch_size": batch,
                                          "sampling": sampling, "folds": 5})
    classes = int(labels.max()) + 1
    expected = expected_copies(experiment.sampling, np.bincount(labels, minlength=classes))
    parts = {"train": np.arange(len(labels)), "val": np.arange(0)}
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "epochs.json"
        TorchTrainer(
            _consume, train_loop_config={"epochs": epochs, "batch": batch, "record": str(record)},
            scaling_config=ray.train.ScalingConfig(
                num_workers=1, use_gpu=DEVICE.type == "cuda", resources_per_worker={"CPU": 1}),
            run_config=ray.train.RunConfig(storage_path=folder, name="feed"),
            datasets=fold_datasets(experiment, parts, labels, expected, cache, 0),
            dataset_config=ray.train.DataConfig(datasets_to_split=["train"])).fit()
        epochs_seen = json.loads(record.read_text())
    steady = [meter.between(e["first"], e["end"]) / max(e["images"] - batch, 1) for e in epochs_seen]
    startup = [meter.between(e["asked"], e["first"]) for e in epochs_seen]
    images = sum(e["images"] for e in epochs_seen)
    whole = meter.between(epochs_seen[0]["asked"], epochs_seen[-1]["end"]) / images
    return {"steady_ms_per_image": [round(1e3 * s, 3) for s in steady],
            "epoch_startup_cpu_s": [round(s, 2) for s in startup],
            "whole_ms_per_image": round(1e3 * whole, 3),
            "images_per_epoch": [e["images"] for e in epochs_seen]}


def _consume(config: dict) -> None:
    """A Ray Train loop that takes every epoch's batches and does nothing with them."""
    import ray.train
    import ray.train.torch

    from raycells.train.feed import EpochBatches

    shard = ray.train.get_dataset_shard("train")
    device = ray.train.torch.get_device()
    epochs = []
    for _ in range(config["epochs"]):
        asked, first, images = time.time(), None, 0
        for batch in EpochBatches(shard, config["batch"], device):
            first = first or time.time()
            images += len(batch["image"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        epochs.append({"asked": asked, "first": first, "end": time.time(), "images": images})
    Path(config["record"]).write_text(json.dumps(epochs))  # the driver's machine: one node


def _synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _ms(cpu: float, count: int) -> float:
    return round(1e3 * cpu / max(count, 1), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/pbc")
    parser.add_argument("--sizes", default="224,400", help="image sizes, comma-separated")
    parser.add_argument("--images", type=int, default=2000, help="a seeded sample of this many")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sampling", default="none", help="the training part's sampling policy")
    args = parser.parse_args()

    from raycells.settings import Placement
    from raycells.train.trainer import init_ray

    meter = TreeCpu()
    manifest = index_dataset(args.data)
    frame = manifest.frame
    if args.images < len(frame):
        frame = frame.sample(n=args.images, random_state=0).reset_index(drop=True)
    labels = np.unique(frame["label"], return_inverse=True)[1].astype(np.int64)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ["RAYCELLS_CACHE"] = folder  # an empty cache: the build is measured
        # A cluster of its own (never RAY_ADDRESS's): its processes are this one's children,
        # whose CPU the meter counts.
        init_ray(Placement(address="local"))
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
        for size in (int(s) for s in args.sizes.split(",")):
            cpu = meter.seconds()
            cache = image_cache(frame, size)
            build = _ms(meter.seconds() - cpu, len(frame))
            table = pq.read_table(cache)
            order = np.argsort(table.column("row").to_numpy())
            images = torch.from_numpy(images_from_column(table.column("image"), size)[order])
            del table
            results.append({
                "size": size, "images": len(frame),
                "cache_build_ms_per_image": build,
                "in_memory_ms_per_image": in_memory(images, args.batch_size, args.epochs, meter),
                "plain_parquet_ms_per_image": plain_parquet(cache, size, args.batch_size,
                                                            args.epochs, meter),
                "raycells": raycells_feed(cache, size, labels, args.sampling, args.batch_size,
                                          args.epochs, meter)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({
        "command": "benchmarks/feed.py " + " ".join(sys.argv[1:]), "data": args.data,
        "batch_size": args.batch_size, "epochs": args.epochs, "sampling": args.sampling,
        "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Ray CPUs {cpus:g}",
        "results": results}))


if __name__ == "__main__":
    main()
