"""The Ray Data side of training: a fold's train, validation and test images streamed from the
decoded-image cache as uint8 batches with integer labels.

Each task reads cache shards with pyarrow and keeps the part's rows. (Ray Data's own Parquet
reader would start a pool of footer-reading actors, each a new process, for every execution:
seconds of CPU at the start of every epoch; benchmarks/feed.py measures it.) A shuffled part's
tasks each read shards holding at least `SHUFFLE_ROWS` images, drawn in a new order every epoch,
and put the rows of their block in a random order: the copy that keeps the part's rows makes the
shuffle, so the training worker needs no shuffle buffer (another copy of every image).

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
from .sampling import epoch_copies

DATA_TASK_CPUS = 0.25

SHUFFLE_ROWS = 256
"""Images a shuffled part's read task mixes into one block (at least): a batch is drawn from that
many images of several shards."""

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
    per_read = 1
    if shuffle and shards:
        per_read = max(1, -(-SHUFFLE_ROWS // pq.ParquetFile(shards[0]).metadata.num_rows))
    reads = -(-len(shards) // per_read)
    positions = ray.data.from_items(
        [{"position": i} for i in range(reads)], override_num_blocks=max(reads, 1))
    # Small CPU requests: on a small machine the training workers hold most cores.
    return positions.map_batches(
        _read_shards, batch_format="numpy", batch_size=None, num_cpus=DATA_TASK_CPUS,
        fn_kwargs={"shards": shards, "per_read": per_read, "size": size, "keep": keep,
                   "labels": labels, "copies": copies, "spread": spread, "shuffle": shuffle,
                   "seed": seed})


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
    drawn = epoch_copies(copies, pooled, seed, epoch)
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


def _read_shards(batch: dict[str, np.ndarray], shards: list[str], per_read: int, size: int,
                 keep: np.ndarray, labels: np.ndarray, copies: np.ndarray | None,
                 spread: dict | None, shuffle: bool, seed: int) -> dict[str, np.ndarray]:
    epoch = execution_number()
    order = shard_order(len(shards), seed, epoch) if shuffle else np.arange(len(shards))
    read = [int(shard) for position in batch["position"]
            for shard in order[position * per_read:(position + 1) * per_read]]
    table = pa.concat_tables([pq.read_table(shards[shard], memory_map=True) for shard in read])
    row = table.column("row").to_numpy()
    index = np.flatnonzero(keep[row])
    images = images_from_column(table.column("image"), size)
    pool = np.zeros(0, dtype=np.int64)
    if copies is not None:
        # Each epoch draws its own copies; each row's draw depends on (seed, epoch, row) only.
        here = row[index]
        drawn = epoch_copies(copies, here, seed, epoch)
        if spread is not None:  # their copies come from the pool, spread over the epoch
            drawn[np.isin(here, spread["rows"])] = 0
            pool = spread_copies(spread["rows"], copies, spread["hosts"], seed, epoch, here)
        index = np.repeat(index, drawn)
    # Block positions: the shard's rows (index >= 0) then the pool's copies (-1 - position).
    places = np.concatenate([index, -1 - pool])
    if shuffle:
        first = int(batch["position"][0])
        places = np.random.default_rng(derive_seed(seed, "block", epoch, first)).permutation(places)
    if not len(pool):  # one copy of each image: the block's own
        out_rows = row[places]
        return {"row": out_rows, "image": np.take(images, places, axis=0), "label": labels[out_rows]}
    import ray

    from_shard = places >= 0
    pooled = -1 - places[~from_shard]
    out_rows = np.empty(len(places), dtype=row.dtype)
    out_rows[from_shard], out_rows[~from_shard] = row[places[from_shard]], spread["rows"][pooled]
    out_images = np.empty((len(places), size, size, 3), dtype=np.uint8)
    out_images[from_shard] = images[places[from_shard]]
    out_images[~from_shard] = ray.get(spread["images"])[pooled]
    return {"row": out_rows, "image": out_images, "label": labels[out_rows]}
