"""Trained networks on new images (`raycells evaluate`): a run's fold models (the mean of their
probabilities, or one fold's) predict every image of another dataset of the same class scheme,
or, through a label mapping, of another scheme (how far the domain shift alone takes the
network).

The result is a run directory that `raycells report` reads like any other: config.json,
manifest.parquet (the evaluated images, with the labels they were scored against), folds.parquet
and fold-0/ with predictions.parquet and metrics.json; an evaluation is one "fold" holding all
its images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.cache import image_cache
from ..data.extra import load_mapping, mapped_extra
from ..data.manifest import Manifest, training_labels, write_manifest
from ..data.schemes import scheme_groups
from ..errors import RaycellsError
from ..metrics import score_fold
from ..settings import Placement
from ..train.predict import predict_rows
from ..train.trainer import init_ray
from .results import predictions_frame, write_fold_results
from .rundir import RunDir, overlap_with_training, write_config, write_plan
from .setup import Events, no_events, open_run


@dataclass
class Evaluation:
    run_dir: Path
    classes: list[str]
    folds: list[int]
    """The source run's folds whose models were used."""
    metrics: dict[str, Any]
    left_out: dict[str, int]
    """Images whose label has no counterpart among the network's classes, by label."""


def run_evaluate(out: str | Path, source_run: str | Path, manifest: Manifest, *,
                 fold: int | None = None, mapping: str | None = None,
                 placement: Placement | None = None, events: Events | None = None,
                 allow_overlap: bool = False) -> Evaluation:
    """Predict the images of `manifest` with the models of `source_run` (all finished folds, their
    probabilities averaged, or fold `fold`) into the new run directory `out`. Labels must be the
    source run's classes, or `mapping` (pbc-to-aml, or a .json/.csv file) maps them there.
    Images the networks trained on (by sha1) are refused unless `allow_overlap`, and then
    recorded as a warning. Events: prepared, cache, networks (folds) as they start, in one pass
    over the images, then images (done, total)."""
    emit = events or no_events
    source = RunDir(source_run)
    settings = source.training_settings()
    classes = list(source.read_config()["data"]["classes"])
    folds = source.model_folds(fold)
    frame, left_out = _scored_images(manifest, classes, mapping, settings.get("labels", "class"))
    overlap = overlap_with_training(frame, source, folds, allow=allow_overlap)
    warnings = [overlap] if overlap else []
    run = open_run(out, "evaluate", resumable=False)

    emit("prepared", run_dir=str(run.path), images=len(frame), classes=classes,
         synthetic=manifest.synthetic, source=manifest.source, extra={}, warnings=warnings)
    init_ray(placement or Placement())
    cache = image_cache(frame, settings["image_size"],
                        progress=lambda done, total: emit("cache", done=done, total=total))
    labels = np.searchsorted(classes, frame["label"].to_numpy())
    rows = np.arange(len(frame))
    emit("networks", folds=folds)
    _, fold_probs = predict_rows([source.checkpoint(k) for k in folds], cache,
                                 settings["image_size"], labels, rows,
                                 tta=settings.get("tta", False),
                                 progress=lambda done, total: emit("images", done=done, total=total))
    probs = fold_probs.mean(axis=0)

    plan = pd.DataFrame({"path": frame["path"], "label": frame["label"], "fold": 0})
    run.path.mkdir(parents=True, exist_ok=True)
    write_config(run, {
        "command": "evaluate",
        "evaluate": {"from": str(source.path), "folds": folds,
                     "combined": "mean of the fold models' probabilities" if len(folds) > 1 else "one fold's model",
                     "map": mapping, "left_out": left_out},
        "data": {"root": manifest.root, "layout": manifest.layout, "source": manifest.source,
                 "synthetic": manifest.synthetic, "images": len(frame), "classes": classes,
                 "warnings": warnings},
    })
    write_manifest(Manifest(frame=frame, root=manifest.root, layout=manifest.layout,
                            source=manifest.source, synthetic=manifest.synthetic), run.manifest)
    write_plan(plan, run.folds)
    metrics = score_fold(labels, probs, classes, groups=scheme_groups(classes))
    write_fold_results(run.fold(0), predictions_frame(plan, classes, rows, probs, fold=0),
                       {**metrics, "models": folds})
    return Evaluation(run_dir=run.path, classes=classes, folds=folds, metrics=metrics,
                      left_out=left_out)


def _scored_images(manifest: Manifest, classes: list[str], mapping: str | None,
                   level: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The images to score, labelled with the network's classes (at its label `level`), and the
    left-out counts."""
    frame = manifest.frame
    if mapping is None:
        frame = training_labels(frame, level, manifest.root)
        unknown = sorted(set(frame["label"]) - set(classes))
        if unknown:
            raise RaycellsError(f"{manifest.root}: the classes {', '.join(unknown)} are not among "
                                f"the network's ({', '.join(classes)}). Pass --map (pbc-to-aml, "
                                "or a .json/.csv from,to file) to map them onto its classes.")
        return frame.reset_index(drop=True), {}
    chosen = mapped_extra(manifest, load_mapping(mapping, flag="--map"), set(classes))
    rest = frame[~frame["path"].isin(chosen["path"])]
    key = rest["fine_label"].fillna(rest["label"]) if "fine_label" in rest else rest["label"]
    return chosen, {str(k): int(n) for k, n in sorted(key.value_counts().items())}
