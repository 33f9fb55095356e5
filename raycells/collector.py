"""Fewer garbage-collector passes in a process that loads torch, Ray and MLflow: they make
hundreds of thousands of objects that live as long as the process, which Python's collector
otherwise goes over again and again while they are imported, and once more as the process ends
(benchmarks/process_gc.py)."""

from __future__ import annotations

import atexit
import gc

THRESHOLDS = (100_000, 50, 100)
"""New objects between passes over the young ones (Python's default: 700), then how many passes
of each generation before the next older one is looked at too (Python's: 10 and 10)."""

_registered = False


def collect_rarely() -> None:
    """For the rest of this process: passes every 100,000 new objects, the full ones rarer, and
    none over what is left when it ends (frozen at exit, after the exit handlers registered
    later, such as the libraries' own). For a process raycells runs: a command, a training
    worker."""
    global _registered
    gc.set_threshold(*THRESHOLDS)
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
