"""Training phases: which part of the network each stretch of epochs trains, and at what rate.

A run from scratch has one phase that trains everything. A transfer run (`raycells transfer`)
has two: first the new head alone with the body frozen (its batch-norm statistics included),
then everything except the batch-norm layers, which stay in eval mode so that their weights and
running statistics keep what the source network learnt (`Transfer.freeze_batchnorm`, the
default; off, the second phase trains everything, batch norm included).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

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


def head_name(model: nn.Module) -> str:
    """Name of the classification head: the last linear layer (fc, classifier, ...)."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear layer to serve as its head")
    return linear[-1]


def set_trainable(model: nn.Module, phase: Phase) -> list[nn.Parameter]:
    """Mark which parameters `phase` trains (requires_grad) and return them, for the optimizer."""
    head = head_name(model) + "."
    batch_norm = _batch_norm_parameters(model)
    for name, parameter in model.named_parameters():
        if phase.trains == HEAD:
            parameter.requires_grad_(name.startswith(head))
        elif phase.trains == ALL_BUT_BATCH_NORM:
            parameter.requires_grad_(name not in batch_norm)
        else:
            parameter.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def train_mode(model: nn.Module, phase: Phase) -> None:
    """model.train(), except for the frozen parts, which stay in eval mode (batch-norm layers
    then neither update their running statistics nor normalise with batch statistics)."""
    if phase.trains == HEAD:
        model.eval()
        model.get_submodule(head_name(model)).train()
        return
    model.train()
    if phase.trains == ALL_BUT_BATCH_NORM:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _batch_norm_parameters(model: nn.Module) -> set[str]:
    return {f"{name}.{parameter}" if name else parameter
            for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for parameter, _ in module.named_parameters(recurse=False)}
