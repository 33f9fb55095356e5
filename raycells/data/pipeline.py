"""The Ray Data side of training: a fold's train, validation and test images streamed from the
decoded-image cache as uint8 batches with integer labels.

Repeatable: the shard order of every epoch and its sampling draws are seeded by (seed, epoch), and
`raycells.train.trainer.init_ray` keeps Ray Data's output in order, so the same seed gives the
same stream of rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ..seeds import derive_seed, uniforms
from .cache import images_from_column
from .sampling import draw_copies

DATA_TASK_CPUS = 0.25


def part_dataset(cache: Path, size: int, labels: np.ndarray, rows: np.ndarray,
                 copies: np.ndarray | None = None, shuffle: bool = False, seed: int = 0):
    """A Ray Dataset of the cache rows in `rows` with columns row, image (n, size, size, 3 uint8)
    and label. With `copies` (expected copies per manifest row), every execution of the dataset
    (every epoch) draws how many times each row appears; with `shuffle`, every execution reads
    the cache's shards in a new order. Both are seeded by `seed` and the execution's number."""
    import ray.data

    keep = np.zeros(len(labels), dtype=bool)
    keep[rows] = True
    order = ray.data.FileShuffleConfig(seed=derive_seed(seed, "shards")) if shuffle else None
    # Small CPU requests: on a small machine the training workers hold most cores.
    dataset = ray.data.read_parquet(str(cache), num_cpus=DATA_TASK_CPUS, shuffle=order)
    return dataset.map_batches(
        _select, batch_format="pyarrow", zero_copy_batch=True, num_cpus=DATA_TASK_CPUS,
        fn_kwargs={"size": size, "keep": keep, "labels": labels, "copies": copies, "seed": seed})


def execution_number() -> int:
    """Which execution of its dataset the calling Ray Data task belongs to: 0 for the first epoch,
    1 for the second, ... Ray Data counts them to reseed file shuffles (`FileShuffleConfig`) and
    hands the count to every task in its DataContext; the sampling draws use the same count."""
    import ray.data

    return int(getattr(ray.data.DataContext.get_current(), "_execution_idx", 0))


def _select(batch: pa.Table, size: int, keep: np.ndarray, labels: np.ndarray,
            copies: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    row = batch.column("row").to_numpy()
    chosen = np.flatnonzero(keep[row])
    if copies is not None:
        # Each epoch draws its own copies; each row's draw depends on (seed, epoch, row) only.
        draws = uniforms(derive_seed(seed, "copies", execution_number()), row[chosen])
        chosen = np.repeat(chosen, draw_copies(copies[row[chosen]], draws))
    images = images_from_column(batch.column("image"), size)
    return {"row": row[chosen], "image": images[chosen], "label": labels[row[chosen]]}
