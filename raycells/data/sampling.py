"""The per-epoch sampling hook: which training images an epoch sees, how many copies of each, and
how much each class weighs in the loss.

A policy turns the class sizes of a fold's training part into an expected number of copies per
image of each class; every epoch draws the actual copies afresh (the integer part always, the
fractional part at random, seeded by the run's seed and the epoch), so an epoch sees the expected
class counts on average and a copy is the same image under a new random augmentation. Copies
never reach disk, validation or test.

- `none`: every image once.
- `oversample`: each class up to `target` images per epoch (default: the largest class's size),
  never fewer than one copy of each image, at most `cap` copies of one image when a cap is set.
  Matek et al. 2019: about 10,000 images per class.
- `sqrt`: class counts proportional to the square root of the class size, epochs as long as
  without sampling (large classes are subsampled, small ones repeated).
- `class-weighted`: every image once; the loss weighs each class by n / (classes * class size).

With `same_length`, the copies are scaled so that every epoch holds as many images as the training
part, whatever the policy (large classes are then subsampled): policies compared that way see the
same number of images, so a difference is balance, not more gradient steps.
"""

from __future__ import annotations

import numpy as np

from ..seeds import derive_seed, uniforms
from ..settings import Sampling


def expected_copies(sampling: Sampling, class_counts: np.ndarray) -> np.ndarray:
    """Expected copies per epoch of one image of each class (classes without images: 0)."""
    counts = np.asarray(class_counts, dtype=float)
    present = counts > 0
    copies = np.where(present, 1.0, 0.0)
    if sampling.policy == "oversample":
        target = sampling.target if sampling.target is not None else counts.max()
        copies[present] = np.maximum(1.0, target / counts[present])
        if sampling.cap is not None:
            copies = np.minimum(copies, sampling.cap)
    elif sampling.policy == "sqrt":
        roots = np.sqrt(counts)
        copies[present] = counts.sum() * roots[present] / roots.sum() / counts[present]
    if sampling.same_length and present.any():
        copies = copies * counts.sum() / (counts * copies).sum()
    return copies


def loss_weights(sampling: Sampling, class_counts: np.ndarray) -> np.ndarray | None:
    """Per-class loss weights, or None for an unweighted loss."""
    if sampling.policy != "class-weighted":
        return None
    counts = np.asarray(class_counts, dtype=float)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def draw_copies(expected: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Copies of each image for one epoch, given each image's expected number of copies and a
    uniform draw in [0, 1) per image (`raycells.seeds.uniforms`): the whole part always, one more
    copy when the draw falls below the fractional part."""
    whole = np.floor(expected)
    return (whole + (draws < expected - whole)).astype(np.int64)


def epoch_copies(copies: np.ndarray, rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Copies of each of `rows` (manifest rows) in epoch `epoch`, where `copies` holds every
    manifest row's expected copies: a pure function of (seed, epoch, row), so that whoever draws
    a row's copies (a Ray Data task reading its shard, a worker holding the images) agrees."""
    return draw_copies(copies[rows], uniforms(derive_seed(seed, "copies", epoch), rows))
