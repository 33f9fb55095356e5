"""A small Ray actor where training workers post what they are doing, so the driver can show a
live display while `TorchTrainer.fit()` blocks."""

from __future__ import annotations

import time
from typing import Any

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    """The latest status of every fold: epoch, batch, loss, images/s, worker pids."""

    def __init__(self) -> None:
        self._folds: dict[int, dict[str, Any]] = {}

    def post(self, fold: int, **status: Any) -> None:
        self._folds.setdefault(fold, {}).update(status, updated=time.time())

    def add_pid(self, fold: int, rank: int, pid: int) -> None:
        self._folds.setdefault(fold, {}).setdefault("pids", {})[rank] = pid

    def snapshot(self) -> dict[int, dict[str, Any]]:
        return {fold: dict(status) for fold, status in self._folds.items()}
