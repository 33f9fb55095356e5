"""A training phase applied to a network: which parameters train, and which layers stay in eval
mode (`raycells.train.phases` says what each phase trains)."""

from __future__ import annotations

from torch import nn

from .phases import ALL_BUT_BATCH_NORM, HEAD, Phase


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
