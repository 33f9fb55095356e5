"""Network inputs: uint8 image batches as normalised float tensors, and the 8 exact views of
test-time augmentation. Shared by training and prediction, so both see the same pixels."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # prediction needs no Kornia
    from .augment import Augmenter

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def prepare_images(images: torch.Tensor, augmenter: Augmenter | None = None,
                   channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), augmented when `augmenter` is given."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if augmenter is not None:
        x = augmenter(x)
    mean, std = normalisation(x.device)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips and right-angle rotations of a batch (N, C, H, W): exact, no interpolation."""
    return [torch.rot90(flipped, turns, dims=(2, 3))
            for flipped in (x, x.flip(3)) for turns in range(4)]


@cache
def normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The channel means and standard deviations as (1, 3, 1, 1) tensors on `device`, made once
    per device: a copy to a GPU on every batch would make the host wait for the GPU's queue."""
    return MEAN.to(device), STD.to(device)
