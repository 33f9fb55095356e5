"""The run directory, the contract between commands:

    runs/<name>/
      config.json        resolved settings, package versions, seed, git revision when available
      manifest.parquet   the exact images used
      folds.parquet      fold (and inner validation membership) of every image
      fold-<k>/          checkpoint/, history.csv, predictions.parquet, metrics.json
      report/            written by `raycells report`
      ray.log            Ray's own messages while the CLI ran (kept off the terminal)

A fold is finished when its metrics.json exists (written last, atomically).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .errors import RaycellsError
from .files import atomic_path, write_json

PACKAGES = ("torch", "torchvision", "ray", "kornia", "scikit-learn", "numpy", "pandas", "pyarrow",
            "pillow")


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    manifest = property(lambda self: self.path / "manifest.parquet")
    folds = property(lambda self: self.path / "folds.parquet")
    report = property(lambda self: self.path / "report")
    ray_log = property(lambda self: self.path / "ray.log")

    def fold(self, k: int) -> Path:
        return self.path / f"fold-{k}"

    def fold_finished(self, k: int) -> bool:
        return (self.fold(k) / "metrics.json").is_file()

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text())
        except (OSError, ValueError) as error:
            raise RaycellsError(f"{self.config}: cannot read the run's config ({error}). Is "
                                f"{self.path} a raycells run directory?") from error

    def read_plan(self) -> pd.DataFrame:
        return pd.read_parquet(self.folds)


def write_plan(plan: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        plan.to_parquet(tmp, index=False)


def write_config(run: RunDir, content: dict[str, Any]) -> None:
    """config.json with `content` plus the environment: versions, git revision, time."""
    write_json(run.config, {
        "raycells": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": _git_revision(),
        "packages": {name: _version(name) for name in PACKAGES},
        **content,
    })


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
