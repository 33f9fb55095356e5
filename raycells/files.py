"""Where files go: atomic writes (a finished-looking file or folder is always a complete one)
and the cache folder."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RaycellsError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds,
    after its bytes reach the disk (fsync), so that a crash after the rename never leaves an
    empty or partial file under the final name. The file gets the permissions the umask gives
    a new file, whoever wrote it (safetensors writes its files 0600)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(target, ".tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield Path(tmp)
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula in a CSV cell (OWASP: CSV injection)."""


def write_csv(frame, path: str | os.PathLike, **options: Any) -> None:
    """Write the pandas DataFrame `frame` as a CSV file, atomically, every text cell and header
    that a spreadsheet would run as a formula (a class or file named `=1+2`) prefixed with a
    single quote, as OWASP advises; numbers are written as they are."""
    import pandas as pd

    def inert(value: Any) -> Any:
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    safe = frame.rename(columns=inert)
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(inert)
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, **options)


def current_umask() -> int:
    """The process's umask, read without changing it where /proc tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


@contextmanager
def staged_folder(target: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; if the block succeeds (and writes the file
    `marker` into it, which marks a finished folder), move it onto `target`. A `target` without
    its marker (left by a killed process) is replaced; one with it (another process finished
    first) is kept."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _beside(target, "")
    staging.mkdir(0o777)
    try:
        yield staging
        if not (target / marker).is_file():
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""The errors of a write that the disk refused (full, over quota, read-only, failing): a run stops
with a clear message, its finished work intact (every file is written atomically)."""


def check_writable(path: str | os.PathLike, *, folder: bool, option: str = "--out") -> None:
    """Refuse, before any work, an `option` that cannot be written: a file where a folder is
    wanted (or the reverse), or a place under a file or an unwritable folder."""
    path = Path(path)
    kind, other = ("folder", "file") if folder else ("file", "folder")
    if path.exists() and path.is_dir() != folder:
        raise RaycellsError(f"{option} {path} is a {other}, and a {kind} is wanted: choose "
                            f"another {option}.")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if existing != path and not existing.is_dir():
        raise RaycellsError(f"{option} {path}: {existing} is a file, so nothing can be written "
                            f"under it. Choose another {option}.")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK | os.X_OK):
        raise RaycellsError(f"{option} {path}: {existing} is not writable. Choose an {option} "
                            "on a mounted file system you can write to.")


def _beside(target: Path, suffix: str) -> Path:
    """A new hidden name beside `target`. Created with the user's umask (tempfile's 0600 and
    0700 would make a shared run directory or cache unreadable to colleagues and other
    nodes' users)."""
    return target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def cache_dir() -> Path:
    """Where generated and decoded data is cached: $RAYCELLS_CACHE, else ~/.cache/raycells."""
    return Path(os.environ.get("RAYCELLS_CACHE") or Path.home() / ".cache" / "raycells")
