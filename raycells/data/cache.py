"""The decoded-image cache: every image of a manifest decoded once, centre-cropped to a square,
resized to the model's input size and stored as uint8 pixels in Parquet shards.

Decoding runs on Ray Data CPU workers, each task decoding one shard's images and writing the
shard (nothing passes through the driver). The cache is keyed by the images' content (sha1s, in
order) and the size, so later epochs, other folds and other runs on the same images never decode
again. Shards hold two columns: `row` (position in the manifest) and `image` (size*size*3 bytes,
row-major HWC). Rows are stored in a fixed random order, in many small shards, so that reading
the shards in a random order (a new one each epoch) is already a good shuffle and the pipeline
can stream without a global shuffle. On a multi-node cluster, point $RAYCELLS_CACHE at storage every node can read.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..files import cache_dir, staged_folder
from .images import to_rgb

CACHE_VERSION = 4
"""Bumped when the decoding, resizing or shard format changes, so older caches are not reused
(3: uncompressed shards; 4: resized from the crop box, plain encoding)."""

_COMPLETE = "_COMPLETE"
_SHARD_BYTES = 8 * 2**20


def cache_key(sha1s: pd.Series, size: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}:{size}:".encode())
    for value in sha1s:
        digest.update(str(value).encode())
    return digest.hexdigest()[:16]


def image_cache(frame: pd.DataFrame, size: int, *,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """The cache folder for the images of `frame` (a manifest frame) at `size`; built with Ray
    Data on first use, each task decoding the images of one shard and writing it. Ray must be
    initialised."""
    import ray.data

    folder = cache_dir() / "images" / f"{cache_key(frame['sha1'], size)}-{size}px"
    if (folder / _COMPLETE).is_file():
        return folder
    with staged_folder(folder, _COMPLETE) as staging:
        counter = _counter_class().remote() if progress else None
        order = np.random.default_rng(0).permutation(len(frame))
        per_shard = int(np.clip(_SHARD_BYTES // (size * size * 3), 64, 1024))
        shards = -(-len(frame) // per_shard)
        written = ray.data.from_items([{"shard": i} for i in range(shards)],
                                      override_num_blocks=max(shards, 1)).map_batches(
            write_shards, batch_size=None, fn_kwargs={
                "rows": order, "paths": frame["path"].astype(str).to_numpy()[order],
                "per_shard": per_shard, "size": size, "folder": str(staging),
                "counter": counter})
        stop = threading.Event()
        if progress:
            threading.Thread(target=_follow, args=(counter, len(frame), progress, stop),
                             daemon=True).start()
        try:
            decoded = sum(int(batch["images"].sum()) for batch in
                          written.iter_batches(batch_size=None, batch_format="numpy"))
        finally:
            stop.set()
        if progress:
            progress(decoded, len(frame))
        (staging / _COMPLETE).write_text(f"{len(frame)} images, {size}px\n")
    return folder


@functools.cache
def _counter_class():
    import ray

    @ray.remote(num_cpus=0)
    class DecodedImages:
        """How many images the cache's tasks have decoded so far (for the progress bar)."""

        def __init__(self) -> None:
            self.count = 0

        def add(self, count: int) -> None:
            self.count += count

        def total(self) -> int:
            return self.count

    return DecodedImages


def _follow(counter, total: int, progress: Callable[[int, int], None],
            stop: threading.Event) -> None:
    import ray

    while not stop.wait(0.5):
        try:
            progress(min(ray.get(counter.total.remote(), timeout=5), total), total)
        except Exception:  # the bar is best effort; the build goes on
            continue


def write_shards(batch: dict[str, np.ndarray], rows: np.ndarray, paths: np.ndarray,
                 per_shard: int, size: int, folder: str, counter=None) -> dict[str, np.ndarray]:
    """Decode, centre-crop and resize the images of the shards in the batch and write each shard
    into `folder`, uncompressed: pixels barely compress, and reading uncompressed shards costs
    the training feed a fraction of the CPU (benchmarks/feed.py). Every 16 images are added to
    `counter` (an actor counting them for the progress bar), if given."""
    counts = []
    for shard in batch["shard"]:
        part = slice(shard * per_shard, (shard + 1) * per_shard)
        images = np.empty((len(paths[part]), size, size, 3), dtype=np.uint8)
        for i, path in enumerate(paths[part]):
            images[i] = load_square(path, size)
            if counter is not None and (i + 1) % 16 == 0:
                counter.add.remote(16)
        if counter is not None and len(images) % 16:
            counter.add.remote(len(images) % 16)
        # The pixels as they are (no copy into Python bytes), plainly encoded: dictionary
        # encoding and statistics of 480 kB values cost more CPU than decoding the image.
        column = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(size * size * 3), len(images), [None, pa.py_buffer(images)])
        table = pa.table({"row": pa.array(rows[part], pa.int64()), "image": column})
        pq.write_table(table, Path(folder) / f"part-{shard:05d}.parquet", compression="none",
                       use_dictionary=False, write_statistics=False)
        counts.append(len(images))
    return {"shard": batch["shard"], "images": np.asarray(counts, dtype=np.int64)}


def load_square(path: str, size: int) -> np.ndarray:
    """One image as a (size, size, 3) uint8 array: the central square, resized."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))  # decode at a reduced scale when that is enough
        return square(image, size)


def square(image: Image.Image, size: int) -> np.ndarray:
    """A decoded image as a (size, size, 3) uint8 array: RGB, the central square, resized."""
    image = to_rgb(image)
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    box = (left, top, left + side, top + side)
    if side != size or image.size != (side, side):  # resized from the box: no cropped copy
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    return np.asarray(image, dtype=np.uint8)


def images_from_column(column: pa.ChunkedArray | pa.Array, size: int) -> np.ndarray:
    """The `image` column of a cache batch as a (n, size, size, 3) uint8 array, without copying
    where the column is one chunk."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = size * size * 3
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8,
                         count=len(array) * width, offset=array.offset * width)
    return data.reshape(len(array), size, size, 3)


def cached_images(cache: Path, rows: np.ndarray, size: int) -> np.ndarray:
    """The cached images of manifest rows `rows` (sorted), as a (len(rows), size, size, 3) uint8
    array in that order. Reads every shard (rows are stored in a random order)."""
    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for shard in sorted(Path(cache).glob("part-*.parquet")):
        table = pq.read_table(shard)
        row = table.column("row").to_numpy()
        wanted = np.flatnonzero(np.isin(row, rows))
        if len(wanted):
            out[np.searchsorted(rows, row[wanted])] = images_from_column(
                table.column("image"), size)[wanted]
    return out
