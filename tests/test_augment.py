import numpy as np
import pytest
import torch

from raycells.settings import AugmentSettings
from raycells.train.augment import Augmenter


def _batch(n=32, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_keeps_shape_dtype_and_range():
    x = _batch()
    y = Augmenter(AugmentSettings(noise=1.0, brightness=1.0, contrast=1.0))(x, seed=0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)


def test_rotation_angles_spread_over_the_full_circle():
    augmenter = Augmenter(AugmentSettings(flip=0, noise=0, brightness=0, contrast=0))
    augmenter(_batch(n=512, size=16), seed=3)
    angles = augmenter.last_angles().numpy()
    assert angles.min() >= 0 and angles.max() <= 359
    counts, _ = np.histogram(angles, bins=12, range=(0, 360))
    assert counts.min() > 512 / 12 * 0.5  # every 30-degree sector is well represented


def test_identity_when_disabled():
    x = _batch()
    assert not AugmentSettings.off().enabled
    assert torch.equal(Augmenter(AugmentSettings.off())(x, seed=0), x)


def test_reproducible_for_a_seed():
    augmenter, x = Augmenter(AugmentSettings(noise=1.0)), _batch()
    assert torch.equal(augmenter(x, seed=5), augmenter(x, seed=5))
    assert not torch.equal(augmenter(x, seed=5), augmenter(x, seed=6))


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="augment.noise is a probability"):
        AugmentSettings(noise=1.5)
