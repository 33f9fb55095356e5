"""Batched image augmentation with Kornia, run on the training worker's device.

One `AugmentSettings` object describes it; it is saved with the run. Validation and test batches
never pass through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch


@dataclass(frozen=True)
class AugmentSettings:
    """What the training batches go through; `AugmentSettings.off()` disables everything."""

    flip: float = 0.5
    """Probability of a horizontal flip, and separately of a vertical flip."""
    rotate: float = 1.0
    """Probability of a rotation by an angle drawn uniformly from 0-359 degrees."""
    noise: float = 0.3
    """Probability of adding Gaussian noise."""
    noise_std: float = 0.03
    """Standard deviation of the noise, on the 0-1 intensity scale."""
    brightness: float = 0.5
    """Probability of a brightness shift."""
    brightness_range: float = 0.1
    """Largest brightness shift, on the 0-1 intensity scale."""
    contrast: float = 0.5
    """Probability of a contrast change."""
    contrast_range: float = 0.1
    """Largest relative contrast change (0.1: factor 0.9-1.1)."""

    def __post_init__(self) -> None:
        for name in ("flip", "rotate", "noise", "brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} is a probability: got {value}, expected 0 to 1")
        for name in ("noise_std", "brightness_range", "contrast_range"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"augment.{name} must be at least 0 and below 1")

    @classmethod
    def off(cls) -> "AugmentSettings":
        return cls(flip=0.0, rotate=0.0, noise=0.0, brightness=0.0, contrast=0.0)

    @property
    def enabled(self) -> bool:
        return any((self.flip, self.rotate, self.noise, self.brightness, self.contrast))


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
            steps.append(K.RandomContrast((1 - s.contrast_range, 1 + s.contrast_range), p=s.contrast))
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
