"""One fold's training job: everything a training worker needs, as one frozen object that goes
to the worker as it is (no dict, no rebuilding on the other side)."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Experiment
from .phases import Phase, training_phases


@dataclass(frozen=True)
class FoldJob:
    experiment: Experiment
    fold: int
    classes: tuple[str, ...]
    threads: int
    """Torch threads of each training worker."""
    steps_per_epoch: int
    """Optimisation steps in one epoch over the (sampled) training part: the schedule's unit."""
    loss_weights: tuple[float, ...] | None
    """Per-class loss weights (class-weighted sampling), or None for an unweighted loss."""
    shared: tuple[tuple[str, str], ...]
    """Folders every worker's node must see: (what it is, its path)."""

    @property
    def phases(self) -> list[Phase]:
        return training_phases(self.experiment)

    @property
    def epochs(self) -> int:
        """Epochs over all phases."""
        return sum(phase.epochs for phase in self.phases)
