"""A training worker's data feed: one epoch's batches from its shard of the training images,
started ahead of time, or cut from the training images held on its device; and its share of
the inner validation images, read once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import torch

from ..data.sampling import epoch_copies
from ..seeds import derive_seed


class EpochBatches:
    """One epoch of training batches from this worker's shard of the training dataset.

    The pipeline starts at construction, in a background thread that fetches the first batch:
    Ray Data takes seconds to start an epoch, and this way that start-up overlaps whatever the
    worker does next (validating and checkpointing the previous epoch). `waited` adds up the
    seconds the training loop then spent waiting for batches. The blocks come shuffled
    (`raycells.data.pipeline`): no shuffle buffer, which would copy every image once more."""

    def __init__(self, shard, batch_size: int, device: torch.device):
        on_gpu = device.type == "cuda"
        # On a GPU: pinned host memory (copies that do not block) and a few batches in flight.
        self._batches = iter(shard.iter_torch_batches(
            batch_size=batch_size, device=device, drop_last=True, pin_memory=on_gpu,
            prefetch_batches=4 if on_gpu else 1))
        self._first: Future = Future()
        threading.Thread(target=self._fetch_first, daemon=True).start()
        self.waited = 0.0

    def _fetch_first(self) -> None:
        try:
            self._first.set_result(next(self._batches, None))
        except BaseException as error:  # raised in the training loop
            self._first.set_exception(error)

    def __iter__(self):
        asked = time.perf_counter()
        batch = self._first.result()
        while batch is not None:
            self.waited += time.perf_counter() - asked
            yield batch
            asked = time.perf_counter()
            batch = next(self._batches, None)
        self.waited += time.perf_counter() - asked


class HeldImages:
    """A fold's training part held on the worker's device, read once (each image once), from
    which every epoch's batches are cut without a data feed.

    An epoch holds each image as often as the sampling draw says (`epoch_copies`: the same draw
    as the Ray Data stream's for that epoch), in an order seeded by (seed, epoch); the workers
    all hold the whole part and take every `world`-th image of the one shuffled epoch, so each
    gets the same number of batches."""

    def __init__(self, dataset, images: int, size: int, device: torch.device,
                 class_copies: tuple[float, ...] | None, seed: int):
        self.device, self.seed = device, seed
        self.images = torch.empty((images, size, size, 3), dtype=torch.uint8, device=device)
        self.labels = torch.empty(images, dtype=torch.long, device=device)
        rows, start = [], 0
        for batch in dataset.iter_torch_batches(batch_size=256, device=device):
            end = start + len(batch["label"])
            self.images[start:end] = batch["image"]
            self.labels[start:end] = batch["label"]
            rows.append(batch["row"].cpu().numpy())
            start = end
        if start != images:
            raise RuntimeError(f"the training part has {start} images, not {images}")
        self.rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        labels = self.labels.cpu().numpy()
        self.copies = None
        if class_copies is not None:  # expected copies per manifest row, as the stream draws them
            self.copies = np.zeros(int(self.rows.max(initial=-1)) + 1)
            self.copies[self.rows] = np.asarray(class_copies)[labels]

    @staticmethod
    def fits(images: int, size: int, device: torch.device) -> bool:
        """Whether `images` images take at most half the free memory of a GPU `device` (a CPU
        holds them in RAM, as the user asked)."""
        if device.type != "cuda":
            return True
        free, _total = torch.cuda.mem_get_info(device)
        return images * size * size * 3 <= free / 2

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Positions in the held part of epoch `epoch`'s images, shuffled, copies included."""
        drawn = (np.ones(len(self.rows), dtype=np.int64) if self.copies is None
                 else epoch_copies(self.copies, self.rows, self.seed, epoch))
        order = np.repeat(np.arange(len(self.rows)), drawn)
        return np.random.default_rng(derive_seed(self.seed, "held order", epoch)).permutation(order)

    def batches(self, epoch: int, batch_size: int, rank: int, world: int) -> HeldBatches:
        """Worker `rank`'s batches of epoch `epoch` (of `world` workers)."""
        order = self.epoch_order(epoch)
        mine = order[rank::world][:len(order) // world]
        usable = len(mine) // batch_size * batch_size  # as the stream, the last part batch dropped
        return HeldBatches(self, torch.from_numpy(mine[:usable]).to(self.device), batch_size)


class HeldBatches:
    """One epoch's batches cut from `HeldImages`; `waited` is always 0 (nothing to wait for)."""

    def __init__(self, held: HeldImages, order: torch.Tensor, batch_size: int):
        self.held, self.order, self.batch_size = held, order, batch_size
        self.waited = 0.0

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            index = self.order[start:start + self.batch_size]
            yield {"image": self.held.images[index], "label": self.held.labels[index]}


def validation_share(shard, rank: int, world: int, batch_size: int,
                     device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This worker's part of the (unsplit) validation set: the rows with row % world == rank,
    as uint8 image and label batches kept in host memory for every epoch's validation
    (`fixed_batches`: pinned when `device` is a GPU, so that each moves without blocking)."""
    images, labels = [], []
    # Asked for on the CPU: in a Ray Train worker Ray's default would put them on the GPU.
    for batch in shard.iter_torch_batches(batch_size=batch_size, device="cpu"):
        mine = batch["row"] % world == rank
        images.append(batch["image"][mine])
        labels.append(batch["label"][mine].long())
    if not images:
        return []
    return fixed_batches(torch.cat(images), torch.cat(labels), batch_size,
                         pin=device.type == "cuda")


def fixed_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  pin: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Host tensors cut into batches of exactly `batch_size`, the last one padded with blank
    images labelled -1 (`PADDING`), so that a GPU sees one input shape (cuDNN's benchmark search
    runs once, not once per shape); with `pin`, in pinned memory."""
    if images.device.type != "cpu":
        raise ValueError(f"fixed_batches keeps batches in host memory, got {images.device}")
    batches = []
    for start in range(0, len(labels), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        short = batch_size - len(y)
        if short:
            x = torch.cat([x, x.new_zeros((short, *x.shape[1:]))])
            y = torch.cat([y, y.new_full((short,), PADDING)])
        batches.append((x.pin_memory(), y.pin_memory()) if pin else (x, y))
    return batches


PADDING = -1
"""The label of the blank images that fill a validation share's last batch: never scored."""
