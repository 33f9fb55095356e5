"""Every random choice of a run comes from its --seed: the fold plan, the initial weights, each
epoch's sampling draws and shuffle order, and the augmentation of every worker. Each takes its own
stream, derived from (seed, what it is for, fold, epoch, rank), so that the same seed gives the
same run while folds, epochs and data-parallel workers draw independently of each other."""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, purpose: str, *parts: int) -> int:
    """A 32-bit seed for `purpose` (such as "init" or "augment") at `parts` (fold, epoch, ...)."""
    words = [seed, zlib.crc32(purpose.encode()), *parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def uniforms(key: int, items: np.ndarray) -> np.ndarray:
    """One number in [0, 1) per item id in `items`, a pure function of (`key`, id): the same item
    gets the same number however the items are batched (SplitMix64 of key and id)."""
    with np.errstate(over="ignore"):
        z = items.astype(np.uint64) + np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
