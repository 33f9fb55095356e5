"""Batched image augmentation with Kornia, run on the training worker's device.

One `AugmentSettings` object (in `raycells.settings`) describes it; it is saved with the run.
Validation and test batches never pass through here.

Every random draw (which images flip, the angles, the shifts, the noise) is made on the batch's
own device and every choice is a `torch.where`, so a step on a GPU never waits for the host:
Kornia's RandomAffine, RandomBrightness and RandomContrast copy their draws to the host and
back on every batch (kornia 0.9), which stalls the GPU's queue. Kornia does the pixel work.
"""

from __future__ import annotations

import torch
from kornia.enhance import adjust_brightness, adjust_contrast_with_mean_subtraction
from kornia.geometry.transform import hflip, rotate, vflip

from ..settings import AugmentSettings


class Augmenter(torch.nn.Module):
    """Apply the augmentations in `settings` to a float batch (N, 3, H, W) scaled to 0-1: each
    image independently flipped left-right and up-down (each with probability `flip`), rotated
    by an angle drawn uniformly from 0-359 degrees, its brightness shifted and its contrast
    changed around its mean grey, and Gaussian noise added, each with its own probability."""

    def __init__(self, settings: AugmentSettings):
        super().__init__()
        self.settings = settings
        self._angles: torch.Tensor | None = None

    def forward(self, images: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        if not self.settings.enabled:
            return images
        if seed is None:
            return self._augment(images)
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self._augment(images)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        s = self.settings
        n, device = len(x), x.device
        if s.flip:
            x = torch.where(_chosen(n, s.flip, device), hflip(x), x)
            x = torch.where(_chosen(n, s.flip, device), vflip(x), x)
        self._angles = None
        if s.rotate:
            angles = torch.rand(n, device=device, dtype=x.dtype) * 359.0
            self._angles = angles.detach()
            # Reflection padding: black corners would tell the network that an image was rotated.
            x = torch.where(_chosen(n, s.rotate, device), rotate(x, angles, padding_mode="reflection",
                                                           align_corners=False), x)
        if s.brightness:
            shift = _uniform(n, -s.brightness_range, s.brightness_range, x)
            x = torch.where(_chosen(n, s.brightness, device), adjust_brightness(x, shift), x)
        if s.contrast:
            factor = _uniform(n, 1 - s.contrast_range, 1 + s.contrast_range, x)
            x = torch.where(_chosen(n, s.contrast, device), adjust_contrast_with_mean_subtraction(x, factor), x)
        if s.noise:
            x = torch.where(_chosen(n, s.noise, device), x + torch.randn_like(x) * s.noise_std, x)
        return x.clamp_(0.0, 1.0)

    def last_angles(self) -> torch.Tensor | None:
        """The rotation angles (degrees) drawn for the last batch, for checks and tests."""
        return self._angles


def _chosen(n: int, probability: float, device: torch.device) -> torch.Tensor:
    """Which of `n` images an augmentation applied with `probability` changes, as a mask
    broadcastable over (N, C, H, W)."""
    return (torch.rand(n, device=device) < probability).view(n, 1, 1, 1)


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, dtype=like.dtype)

