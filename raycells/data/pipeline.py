"""The Ray Data side of training: a fold's train, validation and test images streamed from the
decoded-image cache as uint8 batches with integer labels.

Each task reads one cache shard with pyarrow and keeps the part's rows. (Ray Data's own Parquet
reader would start a pool of footer-reading actors, each a new process, for every execution:
seconds of CPU at the start of every epoch; benchmarks/feed.py measures it.)

Sampled epochs: each row appears as many times as the epoch's draw says. A row drawn at most
`SPREAD_ABOVE` times appears that often in its own shard's block, where the worker's shuffle
buffer mixes the copies into different batches. The copies of a row drawn more often (the images
of a rare class, oversampled) are spread over the whole epoch instead: each copy is placed in the
block of a training row drawn at random, and the images come from a pool of those rows held once
in Ray's object store. Otherwise one image could fill a block, and the batches cut from it.

Repeatable: the shard order of every epoch, its draws and the copies' places are seeded by
(seed, epoch), and `raycells.train.trainer.init_ray` keeps Ray Data's output in order, so the
same seed gives the same stream of rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..seeds import derive_seed, uniforms
from .cache import cached_images, images_from_column
from .sampling import draw_copies

DATA_TASK_CPUS = 0.25

SPREAD_ABOVE = 4.0
"""Rows expected more often than this in an epoch have their copies spread over the epoch (their
images are then held in the object store: at 400x400, 480 kB each)."""


def part_dataset(cache: Path, size: int, labels: np.ndarray, rows: np.ndarray,
                 copies: np.ndarray | None = None, shuffle: bool = False, seed: int = 0):
    """A Ray Dataset of the cache rows in `rows` with columns row, image (n, size, size, 3 uint8)
    and label. With `copies` (expected copies per manifest row), every execution of the dataset
    (every epoch) draws how many times each row appears; with `shuffle`, every execution reads
    the cache's shards in a new order. Both are seeded by `seed` and the execution's number."""
    import ray
    import ray.data

    rows = np.sort(rows)
    keep = np.zeros(len(labels), dtype=bool)
    keep[rows] = True
    spread = None
    if copies is not None:
        pooled = rows[copies[rows] > SPREAD_ABOVE]
        if len(pooled):
            spread = {"rows": pooled, "hosts": rows,
                      "images": ray.put(cached_images(cache, pooled, size))}
    shards = sorted(str(path) for path in Path(cache).glob("part-*.parquet"))
    positions = ray.data.from_items([{"position": i} for i in range(len(shards))],
                                    override_num_blocks=len(shards))
    # Small CPU requests: on a small machine the training workers hold most cores.
    return positions.map_batches(
        _read_shards, batch_format="numpy", batch_size=None, num_cpus=DATA_TASK_CPUS,
        fn_kwargs={"shards": shards, "size": size, "keep": keep, "labels": labels,
                   "copies": copies, "spread": spread, "shuffle": shuffle, "seed": seed})


def shard_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """Which shard each read position takes in `epoch`: a permutation of the shards that is new
    every epoch and repeats with the seed."""
    return np.random.default_rng(derive_seed(seed, "shards", epoch)).permutation(count)


def spread_copies(pooled: np.ndarray, copies: np.ndarray, hosts: np.ndarray, seed: int,
                  epoch: int, here: np.ndarray) -> np.ndarray:
    """The copies of the `pooled` rows that epoch `epoch` places beside the rows in `here`: their
    positions in `pooled`, one per copy. Every copy of every pooled row goes beside one of the
    `hosts` (the part's rows), drawn uniformly; a pure function of the seed and epoch, so that the
    tasks reading different shards agree on where each copy goes."""
    drawn = draw_copies(copies[pooled], uniforms(derive_seed(seed, "copies", epoch), pooled))
    owner = np.repeat(np.arange(len(pooled)), drawn)
    places = uniforms(derive_seed(seed, "places", epoch), np.arange(len(owner)))
    host = hosts[np.minimum((places * len(hosts)).astype(np.int64), len(hosts) - 1)]
    return owner[np.isin(host, here)]


def execution_number() -> int:
    """Which execution of its dataset the calling Ray Data task belongs to: 0 for the first epoch,
    1 for the second, ... Ray Data counts them to reseed file shuffles and hands the count to
    every task in its DataContext; the shard order and sampling draws use the same count."""
    import ray.data

    return int(getattr(ray.data.DataContext.get_current(), "_execution_idx", 0))


def _read_shards(batch: dict[str, np.ndarray], shards: list[str], size: int, keep: np.ndarray,
                 labels: np.ndarray, copies: np.ndarray | None, spread: dict | None,
                 shuffle: bool, seed: int) -> dict[str, np.ndarray]:
    epoch = execution_number()
    order = shard_order(len(shards), seed, epoch) if shuffle else np.arange(len(shards))
    read = [int(order[position]) for position in batch["position"]]
    table = pa.concat_tables([pq.read_table(shards[shard], memory_map=True) for shard in read])
    row = table.column("row").to_numpy()
    row_index = np.flatnonzero(keep[row])
    images = images_from_column(table.column("image"), size)
    if copies is None:
        return {"row": row[row_index], "image": images[row_index], "label": labels[row[row_index]]}
    # Each epoch draws its own copies; each row's draw depends on (seed, epoch, row) only.
    here = row[row_index]
    drawn = draw_copies(copies[here], uniforms(derive_seed(seed, "copies", epoch), here))
    if spread is not None:
        drawn[np.isin(here, spread["rows"])] = 0  # their copies come from the pool, spread out
    index = np.repeat(row_index, drawn)
    if spread is None:
        return {"row": row[index], "image": images[index], "label": labels[row[index]]}
    import ray

    pool = spread_copies(spread["rows"], copies, spread["hosts"], seed, epoch, here)
    out_rows = np.concatenate([row[index], spread["rows"][pool]])
    out_images = np.empty((len(out_rows), size, size, 3), dtype=np.uint8)
    np.take(images, index, axis=0, out=out_images[:len(index)])
    np.take(ray.get(spread["images"]), pool, axis=0, out=out_images[len(index):])
    # The worker's shuffle buffer mixes the block's rows; the pool's copies are already spread.
    return {"row": out_rows, "image": out_images, "label": labels[out_rows]}
