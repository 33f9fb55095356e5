"""How a cross-validation's folds share the GPUs: how many data-parallel workers (one GPU each)
every fold trains on, and so which folds train at once.

Folds are equal work. Giving every fold one GPU leaves GPUs idle whenever the folds do not divide
evenly among them (5 folds on 4 GPUs: two rounds, the second with 3 idle GPUs; on 8 GPUs, 3 idle
throughout). Training a fold on several GPUs costs a little efficiency (gradients are exchanged
every step), modelled as `SCALING` per doubling of the workers. `fold_widths` picks, by dynamic
programming over waves of folds that start together, the widths with the shortest modelled wall
time; on 1-16 GPUs it comes within 4 % of the ideal (every fold on an even share of the GPUs, at
that share's efficiency): tests/test_schedule.py checks it, on Ray with fake GPUs.
"""

from __future__ import annotations

import math

SCALING = 0.95
"""Data-parallel efficiency per doubling of a fold's workers (one node, NVLink-class links): an
assumption, to be replaced by the GPU benchmark's measurement."""


def speedup(workers: float) -> float:
    """How many times faster a fold trains on `workers` GPUs than on one (a fraction of a GPU:
    proportionally slower)."""
    return workers if workers <= 1 else workers * SCALING ** math.log2(workers)


def fold_widths(folds: int, gpus: int) -> list[int]:
    """Workers of each fold, in the order the folds start: waves of m folds with gpus // m
    workers each, narrow waves first, chosen to minimise the modelled wall time."""
    best: list[tuple[float, list[int]]] = [(0.0, [])]
    for remaining in range(1, folds + 1):
        best.append(min((1 / speedup(gpus // m) + best[remaining - m][0],
                         sorted([gpus // m] * m + best[remaining - m][1]))
                        for m in range(1, min(remaining, gpus) + 1)))
    return best[folds][1]


def timeline(widths: list[int], gpus: int) -> list[tuple[float, float]]:
    """When each fold of unit work starts and ends, started in order, each once its workers'
    GPUs are free; in units of one fold's time on one GPU."""
    free_at = [0.0] * gpus  # when each GPU becomes free
    times = []
    for width in widths:
        free_at.sort()
        start = free_at[width - 1]  # the moment `width` GPUs are free
        finish = start + 1 / speedup(width)
        free_at[:width] = [finish] * width
        times.append((start, finish))
    return times


def modelled_time(widths: list[int], gpus: int) -> float:
    """Wall time of `timeline`: when the last fold ends."""
    return max(end for _, end in timeline(widths, gpus))


def ideal_time(folds: int, gpus: int) -> float:
    """The bound: every fold on an equal share of the GPUs (gpus / folds, fractions allowed), at
    that share's efficiency."""
    return 1 / speedup(gpus / folds)
