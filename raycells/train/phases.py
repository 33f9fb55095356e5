"""Training phases: which part of the network each stretch of epochs trains, and at what rate.

A run from scratch has one phase that trains everything. A transfer run (`raycells transfer`)
has two: first the new head alone with the body frozen (its batch-norm statistics included),
then everything except the batch-norm layers, which stay in eval mode so that their weights and
running statistics keep what the source network learnt (`Transfer.freeze_batchnorm`, the
default; off, the second phase trains everything, batch norm included).

The plan only, without torch: it travels with each fold's job to Ray Train's controller, which
then need not import torch (`raycells.train.trainable` applies a phase to a network).
"""

from __future__ import annotations

from dataclasses import dataclass

ALL, HEAD, ALL_BUT_BATCH_NORM = "all", "head", "all but batch norm"


@dataclass(frozen=True)
class Phase:
    name: str
    first_epoch: int
    """Index (from 0) of the phase's first epoch in the run."""
    epochs: int
    lr: float
    """Peak learning rate; the schedule starts again at each phase."""
    trains: str
    """ALL, HEAD or ALL_BUT_BATCH_NORM."""


def training_phases(experiment) -> list[Phase]:
    """The phases of `experiment` (an Experiment), in order; phases without epochs are left out."""
    transfer = experiment.transfer
    if transfer is None:
        return [Phase("train", 0, experiment.epochs, experiment.lr, ALL)]
    phases = [Phase("head", 0, transfer.head_epochs, transfer.head_lr, HEAD),
              Phase("fine-tune", transfer.head_epochs, experiment.epochs, experiment.lr,
                    ALL_BUT_BATCH_NORM if transfer.freeze_batchnorm else ALL)]
    return [phase for phase in phases if phase.epochs > 0]


def training_epochs(experiment) -> int:
    """Epochs over all of `experiment`'s phases (a transfer's head epochs included)."""
    return sum(phase.epochs for phase in training_phases(experiment))


def phase_of(phases: list[Phase], epoch: int) -> Phase:
    """The phase that epoch `epoch` (from 0) belongs to."""
    return next(p for p in phases if p.first_epoch <= epoch < p.first_epoch + p.epochs)
