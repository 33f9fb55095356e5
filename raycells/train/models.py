"""The model registry: `create_model(name, num_classes, weights=None)` over a few architectures,
and for each the layer whose feature maps class activation maps read (`cam_layer`).

All are built from scratch (no download); `weights` loads a state dict or a raycells checkpoint
file from disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from ..errors import RaycellsError
from .checkpoint import read_torch_file
from .phases import head_name

_REGISTRY: dict[str, Callable[[int], nn.Module]] = {}
_CAM_LAYERS: dict[str, str] = {}


def register_model(name: str, cam_layer: str):
    """Add a builder `fn(num_classes) -> nn.Module` to the registry under `name`. `cam_layer` is
    the dotted name of the module whose output is the last spatial feature map (what Grad-CAM
    weighs): chosen per architecture here, never guessed at run time."""

    def add(builder: Callable[[int], nn.Module]):
        _REGISTRY[name] = builder
        _CAM_LAYERS[name] = cam_layer
        return builder

    return add


def cam_layer(model: nn.Module, name: str) -> nn.Module:
    """The module of `model` (built as registry model `name`) whose feature maps Grad-CAM reads."""
    return model.get_submodule(_CAM_LAYERS[name])


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, weights: str | os.PathLike | None = None) -> nn.Module:
    """Build model `name` with a `num_classes`-way head; load `weights` when given."""
    if name not in _REGISTRY:
        raise RaycellsError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")
    model = _REGISTRY[name](num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model


def state_dict_in(weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a weights file: a plain state dict, or a raycells checkpoint or
    source.pt holding one under "model". Read with `weights_only=True`."""
    fix = "Pass a file saved with torch.save(model.state_dict(), path)."
    state = read_torch_file(weights, fix)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not (isinstance(state, dict) and state
            and all(isinstance(value, torch.Tensor) for value in state.values())):
        raise RaycellsError(f"{weights}: not a state dict (a table of named tensors). {fix}")
    return state


def load_weights(model: nn.Module, weights: str | os.PathLike, *, head: bool = True) -> None:
    """Load a state dict (or a raycells checkpoint holding one under "model") into `model`; with
    `head=False`, every weight but the classification head's (which keeps its fresh values: the
    weights may come from a network trained on other classes)."""
    state = state_dict_in(weights)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if not head:
        prefix = head_name(model) + "."
        state = {key: value for key, value in state.items() if not key.startswith(prefix)}
        state.update({key: value for key, value in model.state_dict().items()
                      if key.startswith(prefix)})
    expected = model.state_dict()
    problems = [f"{len(keys)} {what} (such as {sorted(keys)[0]})" for what, keys in (
        ("missing", expected.keys() - state.keys()), ("unexpected", state.keys() - expected.keys()),
        ("of another shape", {key for key in expected.keys() & state.keys()
                              if expected[key].shape != state[key].shape})) if keys]
    if problems:
        raise RaycellsError(f"{weights}: the weights do not fit {type(model).__name__}: "
                            f"{', '.join(problems)}. Pass --model with the architecture they were "
                            "trained with.")
    model.load_state_dict(state)


@register_model("tiny_cnn", cam_layer="3")
def _tiny_cnn(num_classes: int) -> nn.Module:
    """Four conv blocks and a linear head: a CPU smoke-run network."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))


@register_model("resnet18", cam_layer="layer4")
def _resnet18(num_classes: int) -> nn.Module:
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


@register_model("resnext50", cam_layer="layer4")
def _resnext50(num_classes: int) -> nn.Module:
    """ResNeXt-50 32x4d, the network of Matek et al. 2019."""
    return torchvision.models.resnext50_32x4d(weights=None, num_classes=num_classes)


@register_model("efficientnet_b0", cam_layer="features")
def _efficientnet_b0(num_classes: int) -> nn.Module:
    return torchvision.models.efficientnet_b0(weights=None, num_classes=num_classes)


@register_model("densenet121", cam_layer="features")
def _densenet121(num_classes: int) -> nn.Module:
    return torchvision.models.densenet121(weights=None, num_classes=num_classes)


@register_model("convnext_tiny", cam_layer="features")
def _convnext_tiny(num_classes: int) -> nn.Module:
    return torchvision.models.convnext_tiny(weights=None, num_classes=num_classes)
