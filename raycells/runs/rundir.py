"""The run directory, the contract between commands: the paths inside one, and config.json and
folds.parquet written and read. docs/architecture.md lists every file a run directory holds.

A fold is finished when its metrics.json (written last, atomically) parses and matches its
predictions. An evaluation
(`raycells evaluate`) is one fold-0 holding all its images, with no checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import RaycellsError
from ..files import atomic_path, write_json
from ..train.checkpoint import PATTERN as CHECKPOINT_FILES
from ..train.checkpoint import load_checkpoint
from .results import METRICS, PREDICTIONS

PACKAGES = ("torch", "torchvision", "ray", "kornia", "scikit-learn", "numpy", "pandas", "pyarrow",
            "pillow")


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | Path):
        if re.match(r"[a-z][a-z0-9+.-]*:/", str(path)):  # s3://... (a Path keeps one slash)
            raise RaycellsError(
                f"{path}: a run directory is a folder, not a URL. On a cluster, use the shared "
                "file system every node mounts (/mnt/raycells in cluster/*.yaml), or mount the "
                "bucket as a folder on every node (mountpoint-s3, gcsfuse); see cluster/README.md.")
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    manifest = property(lambda self: self.path / "manifest.parquet")
    folds = property(lambda self: self.path / "folds.parquet")
    report = property(lambda self: self.path / "report")
    ray_log = property(lambda self: self.path / "ray.log")

    def fold(self, k: int) -> Path:
        return self.path / f"fold-{k}"

    def fold_finished(self, k: int) -> bool:
        """Whether fold k finished: its metrics.json parses and counts as many images as its
        predictions.parquet holds (a damaged one is trained again from its checkpoint)."""
        try:
            metrics = json.loads((self.fold(k) / METRICS).read_text())
            rows = pq.ParquetFile(self.fold(k) / PREDICTIONS).metadata.num_rows
        except (OSError, ValueError, pa.ArrowException):
            return False
        return isinstance(metrics, dict) and metrics.get("images") == rows

    def search(self, k: int) -> Path:
        """Fold k's nested search (`raycells cv --search`): trials.csv, chosen.json, tune/."""
        return self.fold(k) / "search"

    def chosen(self, k: int) -> dict[str, Any] | None:
        """The settings fold k's nested search chose, if it ran one and finished."""
        file = self.search(k) / "chosen.json"
        return json.loads(file.read_text())["chosen"] if file.is_file() else None

    def checkpoint(self, k: int) -> Path | None:
        """Fold k's newest checkpoint file (`raycells.train.checkpoint`), if any."""
        files = sorted((self.fold(k) / "checkpoint").glob(CHECKPOINT_FILES))
        return files[-1] if files else None

    def model_folds(self, fold: int | None = None) -> list[int]:
        """The folds whose networks predict: every finished fold, or `fold` alone. Refused, naming
        the fix, when there is none, the fold is not finished or a checkpoint cannot be read (so
        a damaged or foreign file is named before any work starts)."""
        total = self.training_settings()["folds"]
        finished = [k for k in range(total) if self.fold_finished(k)]
        if fold is not None and fold not in finished:
            raise RaycellsError(f"--fold {fold}: {self.fold(fold)} is not a finished fold of "
                                f"{self.path} (finished: {', '.join(map(str, finished)) or 'none'}).")
        wanted = finished if fold is None else [fold]
        if not wanted:
            raise RaycellsError(f"{self.path}: no finished fold, so no trained model yet. Finish "
                                f"the run first (`raycells cv --resume --out {self.path}`).")
        missing = [k for k in wanted if self.checkpoint(k) is None]
        if missing:
            raise RaycellsError(f"{self.fold(missing[0])} has no checkpoint "
                                f"(checkpoint/{CHECKPOINT_FILES}): its model was not kept.")
        for k in wanted:
            load_checkpoint(self.checkpoint(k))
        return wanted

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text())
        except (OSError, ValueError) as error:
            raise RaycellsError(f"{self.config}: cannot read the run's config ({error}). Is "
                                f"{self.path} a raycells run directory?") from error

    def training_settings(self) -> dict[str, Any]:
        """The experiment settings of a run that trained models (cv, transfer, tune)."""
        config = self.read_config()
        settings = config.get("settings", {}).get("experiment")
        if settings is None:
            raise RaycellsError(f"{self.path} trained no models (a `raycells "
                                f"{config.get('command', '?')}` run): name a cv or transfer run.")
        return settings

    def read_plan(self) -> pd.DataFrame:
        try:
            return pd.read_parquet(self.folds)
        except (OSError, ValueError, pa.ArrowException) as error:
            raise RaycellsError(f"{self.folds}: cannot read the run's fold plan ({error}). Is "
                                f"{self.path} a raycells run directory, copied whole?") from error

    def trained_on(self, folds: list[int]) -> set[str]:
        """The sha1s of the images the networks of `folds` saw in training (`training_images`)."""
        return set(self.training_images(folds, columns=["path", "sha1"])["sha1"].dropna())

    def training_images(self, folds: list[int], columns: list[str] | None = None) -> pd.DataFrame:
        """The manifest rows of the images the networks of `folds` saw in training: every image
        outside their test folds (training part, inner validation that picked their epoch,
        extra training images)."""
        plan = self.read_plan()
        seen = set().union(*(set(plan.loc[plan["fold"] != k, "path"]) for k in folds))
        manifest = pd.read_parquet(self.manifest, columns=columns)
        return manifest[manifest["path"].isin(seen)]


def overlap_with_training(frame: pd.DataFrame, source: RunDir, folds: list[int], *,
                          allow: bool) -> str | None:
    """Refuse to score `frame`'s images with networks that trained on some of them (by sha1), or
    with `allow` return the warning to show and record; None when there is no overlap."""
    count = int(frame["sha1"].isin(source.trained_on(folds)).sum())
    if not count:
        return None
    text = (f"{count:,} of the {len(frame):,} images are byte-identical to images the network(s) "
            f"of {source.path} (fold {', '.join(map(str, folds))}) trained on: scores on them are "
            "not test results.")
    if not allow:
        raise RaycellsError(f"{text} Leave them out of the dataset, choose a fold whose test part "
                            "holds them (--fold), or pass --allow-overlap to go on knowing the "
                            "scores are optimistic.")
    return text


def write_plan(plan: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        plan.to_parquet(tmp, index=False)


def write_config(run: RunDir, content: dict[str, Any]) -> None:
    """config.json with `content` plus where it was made: the command line, versions (Python,
    packages, CUDA), the GPUs the driver sees, the git revision and whether the tree had
    uncommitted changes, the time."""
    import torch

    write_json(run.config, {
        "raycells": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command_line": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_revision": _git(["rev-parse", "HEAD"]),
        "git_dirty": None if (status := _git(["status", "--porcelain", "--untracked-files=no"],
                                             empty=True)) is None else bool(status),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        **content,
    })


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], empty: bool = False) -> str | None:
    """What git prints for `args` in raycells' own checkout (None outside one, or for an empty
    answer unless `empty`)."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if empty else out.stdout.strip() or None
