"""One fold's training job: everything a training worker needs, as one frozen object that goes
to the worker as it is (no dict, no rebuilding on the other side)."""

from __future__ import annotations

from dataclasses import dataclass

from ..seeds import derive_seed
from ..settings import Experiment
from .phases import Phase, training_epochs, training_phases


def step_batch(experiment: Experiment, workers: int) -> int:
    """Images per optimisation step over all of a fold's `workers` (`batch_scaling`)."""
    return experiment.batch_size * (workers if experiment.batch_scaling == "per-worker" else 1)


@dataclass(frozen=True)
class FoldJob:
    experiment: Experiment
    fold: int
    classes: tuple[str, ...]
    workers: int
    """Training workers of the fold (data-parallel width)."""
    threads: int
    """Torch threads of each training worker."""
    steps_per_epoch: int
    """Optimisation steps in one epoch over the (sampled) training part: the schedule's unit."""
    loss_weights: tuple[float, ...] | None
    """Per-class loss weights (class-weighted sampling), or None for an unweighted loss."""
    class_copies: tuple[float, ...] | None
    """Expected copies per epoch of one training image of each class (None: each image once)."""
    train_images: int
    """Images in the fold's training part, each once."""
    shared: tuple[tuple[str, str], ...]
    """Folders every worker's node must see: (what it is, its path)."""
    checkpoints: str
    """The fold's checkpoint folder (Ray Train's run folder), where the first worker also writes
    the best epoch's network."""
    test_images: int = 0
    """Images in the fold's test part, which the first worker predicts after the last epoch (0:
    none given to the workers, as for a Tune trial)."""

    @property
    def phases(self) -> list[Phase]:
        return training_phases(self.experiment)

    @property
    def data_seed(self) -> int:
        """The seed of the training part's sampling draws (with the epoch)."""
        return derive_seed(self.experiment.seed, "data", self.fold)

    @property
    def worker_batch(self) -> int:
        """Images per optimisation step on each worker (at least one)."""
        return max(1, step_batch(self.experiment, self.workers) // self.workers)

    @property
    def lr_scale(self) -> float:
        """What each phase's peak learning rate is multiplied by: the workers, with per-worker
        batch scaling (the linear scaling rule), else 1."""
        return float(self.workers) if self.experiment.batch_scaling == "per-worker" else 1.0

    @property
    def epochs(self) -> int:
        """Epochs over all phases."""
        return training_epochs(self.experiment)
