"""The model registry: `create_model(name, num_classes, weights=None)` over a few architectures
(and timm's, named timm:<name>, when timm is installed), and for each the layer whose feature
maps class activation maps read (`cam_layer`).

All are built without weights (nothing is downloaded); `weights` loads a file from disk: a state
dict (torchvision's, timm's, a training script's checkpoint holding one), a safetensors file or a
raycells checkpoint. Pretrained weights for an offline cluster are fetched once elsewhere (for
example torchvision's `ResNeXt50_32X4D_Weights.IMAGENET1K_V2.get_state_dict()` saved with
torch.save, or a timm model's model.safetensors from the Hugging Face hub) and passed as a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import RaycellsError
from ..settings import TIMM
from .checkpoint import read_torch_file
from .trainable import head_name

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
    """The module of `model` (built as registry model `name`) whose feature maps Grad-CAM reads:
    for a timm model, the last stage its own feature_info names."""
    if name.startswith(TIMM):
        return model.get_submodule(model.feature_info[-1]["module"])
    return model.get_submodule(_CAM_LAYERS[name])


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, weights: str | os.PathLike | None = None) -> nn.Module:
    """Build model `name` with a `num_classes`-way head; load `weights` when given."""
    if name.startswith(TIMM):
        model = _timm_model(name.removeprefix(TIMM), num_classes)
    elif name not in _REGISTRY:
        raise RaycellsError(f"unknown model {name!r}: choose one of {', '.join(model_names())}, "
                            f"or {TIMM}<name> for one of timm's")
    else:
        model = _REGISTRY[name](num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model


def _timm_model(name: str, num_classes: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise RaycellsError(f"--model {TIMM}{name} needs timm: pip install timm (on every node of "
                            "a cluster).") from None
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    except RuntimeError as error:  # timm's "Unknown model (...)"
        raise RaycellsError(f"--model {TIMM}{name}: {error}; `timm.list_models()` lists the "
                            "names.") from None


CHECKPOINT_KEYS = ("model", "state_dict")
"""Where a checkpoint file keeps its state dict: raycells' and many scripts' "model", timm's
train.py and PyTorch Lightning's "state_dict"."""


def state_dict_in(weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a weights file: a plain state dict, a .safetensors file, or a checkpoint
    holding one under a CHECKPOINT_KEYS key. Torch files are read with `weights_only=True`."""
    fix = ("Pass a file saved with torch.save(model.state_dict(), path), or a .safetensors file "
           "(safetensors.torch.save_file(model.state_dict(), path)).")
    if Path(weights).suffix == ".safetensors":
        state = _safetensors(weights, fix)
    else:
        state = read_torch_file(weights, fix)
    if isinstance(state, dict):
        inner = next((state[key] for key in CHECKPOINT_KEYS if isinstance(state.get(key), dict)), None)
        state = state if inner is None else inner
    if not (isinstance(state, dict) and state
            and all(isinstance(value, torch.Tensor) for value in state.values())):
        raise RaycellsError(f"{weights}: not a state dict (a table of named tensors). {fix}")
    return state


def _safetensors(path: str | os.PathLike, fix: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (OSError, SafetensorError) as error:
        raise RaycellsError(f"{path}: it cannot be read as safetensors ({error}). {fix}") from None


def load_weights(model: nn.Module, weights: str | os.PathLike, *, head: bool = True) -> bool:
    """Load a weights file (see `state_dict_in`) into `model`. The classification head comes
    from the file when it fits the model's classes; otherwise (ImageNet's 1,000 classes, another
    scheme's, no head at all), and always with `head=False`, it keeps its fresh values. Returns
    whether the head is new."""
    state = state_dict_in(weights)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    prefix = head_name(model) + "."
    own = {key: value for key, value in model.state_dict().items() if key.startswith(prefix)}
    fits = all(key in state and state[key].shape == value.shape for key, value in own.items())
    new_head = not (head and fits)
    if new_head:
        state = {key: value for key, value in state.items() if not key.startswith(prefix)}
        state.update(own)
    expected = model.state_dict()
    problems = [f"{len(keys)} {what} (such as {sorted(keys)[0]})" for what, keys in (
        ("missing", expected.keys() - state.keys()), ("unexpected", state.keys() - expected.keys()),
        ("of another shape", {key for key in expected.keys() & state.keys()
                              if expected[key].shape != state[key].shape})) if keys]
    if problems:
        raise RaycellsError(f"{weights}: the weights do not fit {type(model).__name__}: "
                            f"{', '.join(problems)}. Pass --model with the architecture they were "
                            f"trained with ({TIMM}<name> for timm's).")
    model.load_state_dict(state)
    return new_head


@register_model("tiny_cnn", cam_layer="3")
def _tiny_cnn(num_classes: int) -> nn.Module:
    """Four conv blocks and a linear head: a CPU smoke-run network."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))


def _torchvision(name: str, num_classes: int) -> nn.Module:
    """torchvision's network `name`, untrained. torchvision is imported here, when first needed:
    its import takes over a second, which a worker training the tiny CNN does not wait for."""
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)


@register_model("resnet18", cam_layer="layer4")
def _resnet18(num_classes: int) -> nn.Module:
    return _torchvision("resnet18", num_classes)


@register_model("resnext50", cam_layer="layer4")
def _resnext50(num_classes: int) -> nn.Module:
    """ResNeXt-50 32x4d, the network of Matek et al. 2019."""
    return _torchvision("resnext50_32x4d", num_classes)


@register_model("efficientnet_b0", cam_layer="features")
def _efficientnet_b0(num_classes: int) -> nn.Module:
    return _torchvision("efficientnet_b0", num_classes)


@register_model("densenet121", cam_layer="features")
def _densenet121(num_classes: int) -> nn.Module:
    return _torchvision("densenet121", num_classes)


@register_model("convnext_tiny", cam_layer="features")
def _convnext_tiny(num_classes: int) -> nn.Module:
    return _torchvision("convnext_tiny", num_classes)
