"""A small Ray actor where training workers post what they are doing, so the driver can show a
live display while `TorchTrainer.fit()` blocks, and learn which nodes trained each fold."""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)
class ProgressBoard:
    """The latest status of every fold (epoch, batch, loss, images/s), the history row of every
    epoch it finished, and the nodes its training workers ran on."""

    def __init__(self) -> None:
        self._folds: dict[int, dict[str, Any]] = {}
        self._epochs: dict[int, list[dict[str, Any]]] = {}

    def post(self, fold: int, **status: Any) -> None:
        self._folds.setdefault(fold, {}).update(status, updated=time.time())

    def epoch_done(self, fold: int, epoch: int, record: dict[str, Any]) -> None:
        """Fold `fold` finished `epoch`; `record` is its history row (kept for `epochs`)."""
        self.post(fold, phase="epoch done", epoch=epoch, last=record)
        self._epochs.setdefault(fold, []).append(record)

    def epochs(self, since: dict[int, int]) -> dict[int, list[dict[str, Any]]]:
        """Every fold's epoch records after the first `since[fold]`."""
        return {fold: records[since.get(fold, 0):] for fold, records in self._epochs.items()
                if len(records) > since.get(fold, 0)}

    def joined(self, fold: int, node: str) -> None:
        nodes = self._folds.setdefault(fold, {}).setdefault("nodes", [])
        if node not in nodes:
            nodes.append(node)

    def nodes(self, fold: int) -> list[str]:
        return list(self._folds.get(fold, {}).get("nodes", []))

    def snapshot(self) -> dict[int, dict[str, Any]]:
        return {fold: dict(status) for fold, status in self._folds.items()}


def start_board():
    """A board on the caller's node: a worker node lost mid-run does not take it along."""
    here = ray.get_runtime_context().get_node_id()
    return ProgressBoard.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
