"""`raycells predict`: a run's networks on unlabelled images, as Ray Data batch inference, and the
table of what they predicted (the same table `raycells.load_model(...).predict` returns).

The table, one row per image: path, predicted (class code), predicted_name, probability (of the
predicted class), spread (the standard deviation of that class's probability over the fold
networks: how much they disagree; empty with one network), top_3 ("CODE p, CODE p, CODE p"),
prob_<class> for every class, for a scheme with groups (AML: blast, atypical) p_<group> and
<group>_flag (p_<group> >= the threshold, as in the report), and unusual (what lies outside the
training images' sizes and colours; empty when nothing does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.cache import image_cache
from ..data.manifest import Manifest, Problem
from ..data.schemes import scheme_for
from ..errors import RaycellsError
from ..files import atomic_path, write_csv
from ..runs.results import prob_column
from ..settings import Placement
from ..train.predict import predict_rows
from ..train.trainer import init_ray
from .networks import RunNetworks

Events = Callable[..., None]


@dataclass
class Predictions:
    table: pd.DataFrame
    networks: RunNetworks
    unreadable: list[Problem]
    """Images that could not be read (left out of the table)."""
    skipped: list[str]
    """Files in the folders given whose names are not image names."""


def prediction_table(paths: list[str], network_probs: np.ndarray, classes: list[str],
                     names: dict[str, str], *, unusual: list[str],
                     threshold: float = 0.5) -> pd.DataFrame:
    """The prediction table (see the module's docstring) from each network's probabilities
    `network_probs` (networks, images, classes)."""
    probs = network_probs.mean(axis=0)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    predicted = top[:, 0]
    rows = np.arange(len(paths))
    codes = np.asarray(classes)
    table = pd.DataFrame({
        "path": paths,
        "predicted": codes[predicted],
        "predicted_name": [names[code] for code in codes[predicted]],
        "probability": probs[rows, predicted].astype(np.float32),
        "spread": (network_probs[:, rows, predicted].std(axis=0).astype(np.float32)
                   if len(network_probs) > 1 else np.nan),
        "top_3": [", ".join(f"{codes[i]} {probs[n, i]:.3f}" for i in top[n]) for n in rows],
    })
    for index, code in enumerate(classes):
        table[prob_column(code)] = probs[:, index].astype(np.float32)
    scheme = scheme_for(classes)
    for group, members in (scheme.groups.items() if scheme else ()):
        score = probs[:, [classes.index(code) for code in members if code in classes]].sum(axis=1)
        table[f"p_{group}"] = score.astype(np.float32)
        table[f"{group}_flag"] = score >= threshold
    table["unusual"] = unusual
    return table


def predict_images(run_dir: str | Path, manifest: Manifest, *, fold: int | None = None,
                   tta: bool | None = None, threshold: float = 0.5,
                   placement: Placement | None = None, events: Events | None = None) -> Predictions:
    """Predict the images of `manifest` (see `raycells.data.index.index_images`) with the
    networks of `run_dir`: every finished fold's (probabilities averaged) or fold `fold`'s; with
    test-time augmentation as the run was configured unless `tta` says otherwise. Events: cache
    (done, total), networks (folds) as they start, in one pass over the images, then images
    (done, total)."""
    emit = events or (lambda kind, **info: None)
    networks = RunNetworks.of(run_dir, fold)
    if manifest.frame.empty:
        raise RaycellsError(f"{manifest.root}: none of the images could be read; nothing to "
                            "predict.")
    frame = manifest.frame
    flags = networks.training_range().unusual(frame)
    init_ray(placement or Placement())
    cache = image_cache(frame, networks.image_size,
                        progress=lambda done, total: emit("cache", done=done, total=total))
    rows = np.arange(len(frame))
    emit("networks", folds=networks.folds)
    _, network_probs = predict_rows(networks.checkpoints, cache, networks.image_size,
                                    np.zeros(len(frame), int), rows,
                                    tta=networks.tta if tta is None else tta,
                                    progress=lambda done, total: emit("images", done=done, total=total))
    table = prediction_table(frame["path"].tolist(), network_probs, networks.classes,
                             networks.names, unusual=flags, threshold=threshold)
    return Predictions(table=table, networks=networks, unreadable=list(manifest.unreadable),
                       skipped=list(manifest.skipped))


def prediction_files(out: str | Path) -> tuple[Path, Path]:
    """(the Parquet file, the CSV file) that `--out` names: a folder gets predictions.parquet
    and predictions.csv; a file name ending in .parquet or .csv gets itself and its twin."""
    out = Path(out)
    if out.suffix.lower() in (".parquet", ".csv"):
        return out.with_suffix(".parquet"), out.with_suffix(".csv")
    return out / "predictions.parquet", out / "predictions.csv"


def write_predictions(table: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write the table as Parquet and CSV (see `prediction_files`), each whole or not at all."""
    written = []
    for path in prediction_files(out):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            write_csv(table, path, float_format="%.6g")
        else:
            with atomic_path(path) as tmp:
                table.to_parquet(tmp, index=False)
        written.append(path)
    return written

