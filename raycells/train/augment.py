"""Batched image augmentation with Kornia, run on the training worker's device.

One `AugmentSettings` object (in `raycells.settings`) describes it; it is saved with the run.
Validation and test batches never pass through here.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from kornia.enhance import adjust_contrast_with_mean_subtraction

from ..settings import AugmentSettings


class Augmenter(torch.nn.Module):
    """Apply the augmentations in `settings` to a float batch (N, 3, H, W) scaled to 0-1."""

    def __init__(self, settings: AugmentSettings):
        super().__init__()
        self.settings = settings
        s = settings
        steps = []
        if s.flip:
            steps += [K.RandomHorizontalFlip(p=s.flip), K.RandomVerticalFlip(p=s.flip)]
        if s.rotate:
            # Reflection padding: black corners would tell the network that an image was rotated.
            steps.append(K.RandomAffine(degrees=(0.0, 359.0), padding_mode="reflection", p=s.rotate))
        if s.brightness:
            steps.append(K.RandomBrightness((1 - s.brightness_range, 1 + s.brightness_range), p=s.brightness))
        if s.contrast:
            steps.append(RandomContrastAroundMean((1 - s.contrast_range, 1 + s.contrast_range),
                                                  p=s.contrast))
        if s.noise:
            steps.append(K.RandomGaussianNoise(std=s.noise_std, p=s.noise))
        self.steps = torch.nn.Sequential(*steps)

    def forward(self, images: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        if not len(self.steps):
            return images
        if seed is None:
            return self.steps(images).clamp_(0.0, 1.0)
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.steps(images).clamp_(0.0, 1.0)

    def last_angles(self) -> torch.Tensor | None:
        """The rotation angles (degrees) drawn for the last batch, for checks and tests."""
        for step in self.steps:
            if isinstance(step, K.RandomAffine) and step._params:
                return step._params["angle"]
        return None


class RandomContrastAroundMean(K.RandomContrast):
    """A contrast change: the distances from the image's mean grey are scaled by the drawn factor.
    (Kornia's RandomContrast multiplies the intensities, which is a brightness gain.)"""

    def apply_transform(self, input, params, flags, transform=None):
        factor = params["contrast_factor"].to(input.device, input.dtype)
        return adjust_contrast_with_mean_subtraction(input, factor).clamp(0.0, 1.0)
