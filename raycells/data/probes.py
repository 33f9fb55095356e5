"""What indexing learnt of each image file, kept in the cache folder ($RAYCELLS_CACHE/probes):
indexing a dataset again reads only the files that are new or changed since (PBC's 8,561 images
take seconds of both cores to hash and decode; a second index of them, a fraction of one).

A file's facts are reused only while its size, modification time, change time and inode are
the ones recorded (as git's index decides that a file is unchanged), under the same pixel limit.
Unreadable files are not kept: they are read again, and named again, every time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from ..files import atomic_path, cache_dir
from .images import ImageFacts

VERSION = 1
"""Raised when what `probe` records changes: older entries are then read again."""

_STAT = ("size", "mtime_ns", "ctime_ns", "ino")
_FACTS = [f.name for f in fields(ImageFacts)]


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _store(paths: list[str], max_pixels: int) -> Path:
    """The cache file for images under the folder that holds all of `paths`."""
    folder = os.path.commonpath(paths) if paths else ""
    key = hashlib.sha1(f"{VERSION}|{max_pixels}|{folder}".encode()).hexdigest()[:20]
    return cache_dir() / "probes" / f"{key}.parquet"


def known(paths: list[str], max_pixels: int) -> dict[str, ImageFacts]:
    """The recorded facts of those of `paths` that have not changed since they were recorded."""
    store = _store(paths, max_pixels)
    try:
        frame = pd.read_parquet(store)
    except (OSError, ValueError):  # none yet, or not one this version wrote: read the images
        return {}
    if not set(_STAT) | set(_FACTS) | {"path"} <= set(frame.columns):
        return {}
    wanted = set(paths)
    facts = {}
    for row in frame.itertuples(index=False):
        if row.path in wanted and _stat(row.path) == tuple(getattr(row, name) for name in _STAT):
            facts[row.path] = ImageFacts(**{
                name: tuple(getattr(row, name)) if name in ("mean", "std") else getattr(row, name)
                for name in _FACTS})
    return facts


def record(paths: list[str], facts: dict[str, ImageFacts], max_pixels: int) -> None:
    """Keep `facts` (path -> facts, of the readable ones of `paths`, the images `known` was
    asked about) for the next index of these images; a cache folder that cannot be written
    only costs that speed."""
    rows = []
    for path, fact in facts.items():
        stat = _stat(path)
        if stat is not None:
            rows.append({"path": path, **dict(zip(_STAT, stat)), **asdict(fact)})
    if not rows:
        return
    store = _store(paths, max_pixels)  # as `known` finds it, unreadable files or not
    frame = pd.DataFrame(rows)
    for name in ("mean", "std"):
        frame[name] = frame[name].map(list)
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(store) as tmp:
            frame.to_parquet(tmp, index=False)
    except OSError:
        pass
