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


def test_data_parallel_workers_draw_their_own_augmentations():
    """Each worker (rank) seeds its epoch differently, so the ranks of one data-parallel fold do
    not apply the same flips and rotations to their batches; the same rank repeats itself."""
    from raycells.settings import Experiment
    from raycells.train.job import FoldJob
    from raycells.train.loop import epoch_seed

    job = FoldJob(experiment=Experiment(seed=3), fold=1, classes=("a", "b"), threads=1,
                  workers=1, steps_per_epoch=1, loss_weights=None, class_copies=None,
                  train_images=0, shared=(), checkpoints="")
    augmenter = Augmenter(AugmentSettings(flip=0, noise=0, brightness=0, contrast=0))

    def angles(epoch, rank):
        torch.manual_seed(epoch_seed(job, epoch, rank))
        augmenter(_batch(n=16, size=8))
        return augmenter.last_angles()

    assert torch.equal(angles(0, 0), angles(0, 0))
    assert not torch.equal(angles(0, 0), angles(0, 1))
    assert not torch.equal(angles(0, 0), angles(1, 0))


def test_contrast_changes_contrast_not_brightness():
    """A contrast factor scales the distance from the mean grey: the mean stays, the spread
    changes by the drawn factor (Kornia's own RandomContrast scales intensities, which moves the
    mean)."""
    x = 0.3 + 0.2 * _batch(n=64)  # away from 0 and 1: nothing clamped
    only_contrast = AugmentSettings(flip=0, rotate=0, noise=0, brightness=0, contrast=1.0,
                                    contrast_range=0.5)
    y = Augmenter(only_contrast)(x, seed=1)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-3)
    ratio = y.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert ratio.min() >= 0.5 - 1e-3 and ratio.max() <= 1.5 + 1e-3 and ratio.std() > 0.1


def test_each_augmentation_changes_only_the_images_drawn_for_it():
    """With probability 0.5 about half the images are flipped, the others left exactly as
    they were (the choice is made per image, on the batch's device)."""
    x = _batch(n=400, size=8)
    y = Augmenter(AugmentSettings(flip=0.5, rotate=0, noise=0, brightness=0, contrast=0))(x, seed=2)
    unchanged = (y == x).flatten(1).all(1)
    flipped = [torch.equal(y[i], x[i].flip(-1)) or torch.equal(y[i], x[i].flip(-2))
               or torch.equal(y[i], x[i].flip(-1).flip(-2)) for i in range(len(x))]
    assert all(u or f for u, f in zip(unchanged.tolist(), flipped))
    assert 400 * 0.25 * 0.7 < unchanged.sum() < 400 * 0.25 * 1.3  # neither flip: 1/4
