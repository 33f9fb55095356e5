"""Scoring a run directory the way Matek et al. 2019 report results, from the run directory alone:
per-fold metrics recomputed from predictions.parquet, then mean ± std over the folds present."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_curve

from ..data.schemes import scheme_for
from ..errors import RaycellsError
from ..metrics import group_probability, score_fold, summarize_folds
from ..runs.results import HISTORY, METRICS, PREDICTIONS, probabilities, read_metrics, read_predictions
from ..runs.rundir import RunDir


@dataclass
class RunScores:
    """Everything a report shows about one run."""

    run_dir: Path
    classes: list[str]
    scheme: str | None
    folds: list[int]
    """Folds with predictions."""
    missing: list[int]
    """Folds of the plan without readable predictions (unfinished or damaged)."""
    damaged: dict[int, str]
    """Folds whose predictions.parquet exists but cannot be read: what is wrong with it."""
    per_fold: dict[int, dict[str, Any]]
    summary: dict[str, Any]
    confusion: np.ndarray
    """Confusion matrix summed over the folds present (rows: truth, columns: prediction)."""
    plan_id: str
    """Fingerprint of the fold plan: runs with the same one can be paired fold by fold."""
    test_train_ratio: float | None
    """Images a fold tests over images it trains on, averaged over the plan's folds (the inner
    validation hold-out not trained on, extra images in): the corrected t-test's n_test/n_train.
    None when no fold has a training part (an evaluation)."""
    threshold: float
    curves: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]
    """ROC curve (fpr, tpr) of each group score (blast, atypical) in each fold."""
    chosen: dict[int, dict[str, Any]]
    """The settings each fold's nested search chose (`raycells cv --search`); empty otherwise."""
    config: dict[str, Any]
    """The run's config.json: how the results were made (the report's Run block)."""
    histories: dict[int, pd.DataFrame]
    """Each fold's history.csv (one row per epoch), where there is one that can be read."""
    finished_at: float | None
    """When the last fold finished (its metrics.json written; seconds since the epoch)."""
    fold_facts: dict[int, dict[str, Any]]
    """How each fold ran, from its metrics.json where it can be read: best_epoch (the epoch
    kept), epochs, seconds."""


def score_run(run_dir: str | Path, *, threshold: float = 0.5) -> RunScores:
    """Score the finished folds of `run_dir` (probability threshold for the group scores)."""
    run = RunDir(run_dir)
    config = run.read_config()
    # The classes a run trained on; a config.json without its data table (damaged, or written
    # by hand) falls back to the fold plan's labels, which are the same classes.
    classes = list(config.get("data", {}).get("classes")
                   or sorted(run.read_plan()["label"].unique()))
    scheme = scheme_for(classes)
    folds_total = config.get("settings", {}).get("experiment", {}).get("folds")
    if folds_total is None:  # an evaluation (`raycells evaluate`): one fold, all its images
        folds_total = int(run.read_plan()["fold"].max()) + 1
    found = {k: read_predictions(run.fold(k), classes)
             for k in range(folds_total) if (run.fold(k) / PREDICTIONS).is_file()}
    damaged = {k: reason for k, reason in found.items() if isinstance(reason, str)}
    present = [k for k in found if k not in damaged]
    if not present:
        problem = "; ".join(f"fold {k}: {reason}" for k, reason in damaged.items())
        raise RaycellsError(f"{run.path}: no fold has predictions yet"
                            f"{f' that can be read ({problem})' if problem else ''}. Let "
                            "`raycells cv` finish at "
                            "least one fold (or resume it with --resume, which redoes a fold "
                            "whose files are damaged).")
    plan = run.read_plan()
    per_fold, confusion = {}, np.zeros((len(classes), len(classes)), dtype=np.int64)
    curves: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for k in present:
        predictions = found[k]
        y_true = np.searchsorted(classes, predictions["label"].to_numpy())
        probs = probabilities(predictions, classes)
        y_pred = probs.argmax(axis=1)
        scores = score_fold(y_true, probs, classes, groups=scheme.groups if scheme else None,
                            threshold=threshold)
        if scheme is not None:
            for name, members in scheme.groups.items():
                positive, score = group_probability(y_true, probs, classes, members)
                if positive.any() and (~positive).any():
                    fpr, tpr, _ = roc_curve(positive, score)
                    curves.setdefault(name, {})[k] = (fpr, tpr)
        per_fold[k] = scores
        confusion += confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    return RunScores(
        run_dir=run.path, classes=classes, scheme=scheme.name if scheme else None, folds=present,
        missing=[k for k in range(folds_total) if k not in present], damaged=damaged,
        per_fold=per_fold, summary=summarize_folds(per_fold), confusion=confusion,
        plan_id=_plan_id(plan), test_train_ratio=test_train_ratio(plan, folds_total),
        threshold=threshold, curves=curves,
        chosen={k: run.chosen(k) for k in present if run.chosen(k) is not None},
        config=config, histories=_histories(run, present),
        finished_at=max((run.fold(k) / METRICS).stat().st_mtime for k in present)
        if all((run.fold(k) / METRICS).is_file() for k in present) else None,
        fold_facts=_fold_facts(run, present))


def _fold_facts(run: RunDir, folds: list[int]) -> dict[int, dict[str, Any]]:
    facts = {}
    for k in folds:
        try:
            metrics = read_metrics(run.fold(k))
        except (OSError, ValueError):
            continue
        facts[k] = {key: metrics[key] for key in ("best_epoch", "epochs", "seconds") if key in metrics}
    return facts


def _histories(run: RunDir, folds: list[int]) -> dict[int, pd.DataFrame]:
    """The folds' history.csv files that can be read (an evaluation has none)."""
    histories = {}
    for k in folds:
        try:
            histories[k] = pd.read_csv(run.fold(k) / HISTORY)
        except (OSError, ValueError):
            continue
    return histories


def test_train_ratio(plan: pd.DataFrame, folds: int) -> float | None:
    """Mean test part over mean training part of the plan's `folds` folds, counting the images
    a fold really trains on: not its inner validation split, and the extra images (fold -1)."""
    tested, trained = [], []
    for k in range(folds):
        test = plan["fold"].to_numpy() == k
        val = plan[f"val_{k}"].to_numpy() if f"val_{k}" in plan else np.zeros(len(plan), bool)
        tested.append(test.sum())
        trained.append((~test & ~val).sum())
    return float(np.mean(tested) / np.mean(trained)) if np.mean(trained) > 0 else None


def _plan_id(plan: pd.DataFrame) -> str:
    plan = plan[["path", "fold"]].sort_values("path")
    digest = hashlib.sha1()
    for path, fold in plan.itertuples(index=False):
        digest.update(f"{path}\t{fold}\n".encode())
    return digest.hexdigest()
