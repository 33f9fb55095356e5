"""The Ray Data side of training: a fold's train, validation and test images streamed from the
decoded-image cache as uint8 batches with integer labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from .cache import images_from_column
from .sampling import draw_copies

DATA_TASK_CPUS = 0.25


def part_dataset(cache: Path, size: int, labels: np.ndarray, rows: np.ndarray,
                 copies: np.ndarray | None = None, shuffle: bool = False):
    """A Ray Dataset of the cache rows in `rows` with columns row, image (n, size, size, 3 uint8)
    and label. With `copies` (expected copies per manifest row), every execution of the dataset
    (every epoch) draws how many times each row appears; with `shuffle`, every execution reads
    the cache's shards in a new random order."""
    import ray.data

    keep = np.zeros(len(labels), dtype=bool)
    keep[rows] = True
    # Small CPU requests: on a small machine the training workers hold most cores.
    dataset = ray.data.read_parquet(str(cache), num_cpus=DATA_TASK_CPUS,
                                    shuffle="files" if shuffle else None)
    return dataset.map_batches(
        _select, batch_format="pyarrow", zero_copy_batch=True, num_cpus=DATA_TASK_CPUS,
        fn_kwargs={"size": size, "keep": keep, "labels": labels, "copies": copies})


def _select(batch: pa.Table, size: int, keep: np.ndarray, labels: np.ndarray,
            copies: np.ndarray | None) -> dict[str, np.ndarray]:
    row = batch.column("row").to_numpy()
    chosen = np.flatnonzero(keep[row])
    if copies is not None:
        # Fresh entropy on every execution: each epoch draws its own copies.
        chosen = np.repeat(chosen, draw_copies(copies[row[chosen]], np.random.default_rng()))
    images = images_from_column(batch.column("image"), size)
    return {"row": row[chosen], "image": images[chosen], "label": labels[row[chosen]]}
