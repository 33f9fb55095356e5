"""A training worker's data feed: one epoch's batches from its shard of the training images,
started ahead of time, and its share of the inner validation images, read once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import torch


class EpochBatches:
    """One epoch of training batches from this worker's shard of the training dataset.

    The pipeline starts at construction, in a background thread that fetches the first batch:
    Ray Data takes seconds to start an epoch, and this way that start-up overlaps whatever the
    worker does next (validating and checkpointing the previous epoch). `waited` adds up the
    seconds the training loop then spent waiting for batches. `seed` seeds the shuffle buffer."""

    def __init__(self, shard, batch_size: int, device: torch.device, seed: int):
        on_gpu = device.type == "cuda"
        # On a GPU: pinned host memory (copies that do not block) and a few batches in flight.
        self._batches = iter(shard.iter_torch_batches(
            batch_size=batch_size, device=device, drop_last=True, pin_memory=on_gpu,
            prefetch_batches=4 if on_gpu else 1,
            local_shuffle_buffer_size=max(4 * batch_size, 256), local_shuffle_seed=seed))
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


def validation_share(shard, rank: int, world: int,
                     batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This worker's part of the (unsplit) validation set: the rows with row % world == rank,
    as uint8 image and label batches kept in memory for every epoch's validation."""
    batches = []
    for batch in shard.iter_torch_batches(batch_size=batch_size):
        mine = batch["row"] % world == rank
        if mine.any():
            images = batch["image"][mine]
            batches.append((images.pin_memory() if torch.cuda.is_available() else images,
                            batch["label"][mine].long()))
    return batches
