"""The per-epoch sampling hook: which training images an epoch sees, and how many copies of each.

A policy turns the class sizes of a fold's training part into an expected number of copies per
image of each class; every epoch draws the actual copies afresh (the integer part always, the
fractional part at random), so an epoch sees the expected class counts on average and a copy is
the same image under a new random augmentation. Copies never reach disk, validation or test.
"""

from __future__ import annotations

import numpy as np

from .errors import RaycellsError


class NoSampling:
    """Every training image once per epoch."""

    name = "none"

    def expected_copies(self, class_counts: np.ndarray) -> np.ndarray:
        return np.ones(len(class_counts))


POLICIES = {policy.name: policy for policy in (NoSampling,)}


def sampling_policy(name: str):
    if name not in POLICIES:
        raise RaycellsError(f"unknown sampling policy {name!r}: choose one of {', '.join(POLICIES)}")
    return POLICIES[name]()


def draw_copies(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies of each image for one epoch, given each image's expected number of copies."""
    whole = np.floor(expected)
    return (whole + (rng.random(len(expected)) < expected - whole)).astype(np.int64)
