"""The optimizer and the learning-rate schedule of a training phase."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..settings import Experiment


def make_optimizer(parameters: list[nn.Parameter], experiment: Experiment,
                   lr: float) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9, over `parameters` at peak rate `lr`."""
    if experiment.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=experiment.weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=experiment.weight_decay)


def learning_rate(step: int, total: int, peak: float, schedule: str) -> float:
    """The learning rate after `step` of `total` optimisation steps."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    warmup = 0.3  # one-cycle: cosine rise from peak/25 over the first 30%, then cosine decay
    if progress < warmup:
        return peak / 25 + (peak - peak / 25) * 0.5 * (1 - math.cos(math.pi * progress / warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup))) + peak * 1e-4
