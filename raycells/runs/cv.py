"""Stratified k-fold cross-validation on Ray: the driver.

`run_cv` prepares (or reopens) the run directory, builds the decoded-image cache with Ray Data,
and trains each unfinished fold with a Ray Train `TorchTrainer` (folds run concurrently when the
cluster has room for more than one). After a fold's training it predicts the test fold once with
the best model and writes history.csv, predictions.parquet and metrics.json.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.cache import image_cache
from ..errors import RaycellsError
from ..data.extra import EXTRA_FOLD, load_mapping, mapped_extra, read_extra, with_extra
from ..files import atomic_path, write_json
from ..data.folds import copy_folds, fold_parts, make_folds, small_classes
from ..data.manifest import Manifest, read_manifest, training_labels, write_manifest
from ..metrics import fold_metrics, summarize_folds
from ..train.predict import load_checkpoint, predict_rows, predictions_frame
from .rundir import RunDir, write_config, write_plan
from ..settings import Experiment, Placement, as_dict, differences, settings_from_dict
from ..train.trainer import Resources, fit, fold_trainer, init_ray, plan_resources

Events = Callable[..., None]
"""Called as events(kind, **info): prepared, cache, fold_started, status, fold_finished,
fold_skipped. The library never prints; the CLI renders these."""

@dataclass
class CvResult:
    run_dir: Path
    classes: list[str]
    per_fold: dict[int, dict[str, Any]]
    summary: dict[str, Any]
    skipped: list[int] = field(default_factory=list)
    """Folds that were already finished and not trained again."""


def run_cv(out: str | Path, experiment: Experiment, placement: Placement, *,
           manifest: Manifest | None = None, resume: bool = False,
           only_folds: list[int] | None = None, events: Events | None = None,
           command: str = "cv", extra: dict[str, Any] | None = None) -> CvResult:
    """Cross-validate `experiment` into the run directory `out`.

    A new run needs `manifest`; `resume` reopens an existing run directory (refusing different
    settings) and trains only its unfinished folds, from their last checkpoint. `only_folds`
    restricts training to those folds (the others are left for a later call). `command` and
    `extra` go to a new run's config.json."""
    emit = events or (lambda kind, **info: None)
    wanted = range(experiment.folds) if only_folds is None else sorted(set(only_folds))
    if any(not 0 <= k < experiment.folds for k in wanted):
        raise RaycellsError(f"folds are numbered 0 to {experiment.folds - 1}; got {list(wanted)}.")
    run = RunDir(out)
    manifest, plan = prepare_run(run, experiment, placement, manifest, resume, command=command,
                                 extra=extra)
    classes, cache = start_run(run, manifest, plan, experiment, placement, emit)
    todo = [k for k in wanted if not run.fold_finished(k)]
    skipped = [k for k in wanted if k not in todo]
    for k in skipped:
        emit("fold_skipped", fold=k)
    resources = plan_resources(placement, len(todo))
    emit("resources", **resources.__dict__)

    from ..train.progress import start_board

    board = start_board()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(board, emit, stop), daemon=True)
    watcher.start()
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    try:
        _run_concurrently([lambda k=k: _run_fold(run, experiment, resources, plan, classes, labels,
                                                 cache, k, board, emit) for k in todo],
                          at_once=resources.concurrent_folds)
    finally:
        stop.set()
        watcher.join()
    per_fold = {k: json.loads((run.fold(k) / "metrics.json").read_text())
                for k in range(experiment.folds) if run.fold_finished(k)}
    return CvResult(run_dir=run.path, classes=classes, per_fold=per_fold,
                    summary=summarize_folds(per_fold), skipped=skipped)


def start_run(run: RunDir, manifest: Manifest, plan: pd.DataFrame, experiment: Experiment,
              placement: Placement, emit: Events) -> tuple[list[str], Path]:
    """Announce a prepared run, join Ray and build (or reuse) the decoded-image cache; returns
    the classes and the cache folder."""
    classes = sorted(plan["label"].unique())
    extra = plan.loc[plan["fold"] == EXTRA_FOLD, "label"].value_counts()
    emit("prepared", run_dir=str(run.path), images=int((plan["fold"] != EXTRA_FOLD).sum()),
         classes=classes, synthetic=manifest.synthetic, source=manifest.source,
         extra={str(k): int(n) for k, n in sorted(extra.items())})
    init_ray(placement)
    cache = image_cache(manifest.frame, experiment.image_size,
                        progress=lambda done, total: emit("cache", done=done, total=total))
    return classes, cache


def prepare_run(run: RunDir, experiment: Experiment, placement: Placement,
                manifest: Manifest | None, resume: bool, *, command: str = "cv",
                extra: dict[str, Any] | None = None) -> tuple[Manifest, pd.DataFrame]:
    """Start a run directory (config.json, manifest.parquet, folds.parquet), or reopen one for
    --resume after checking its settings; returns the manifest and the fold plan."""
    if run.config.is_file():
        if not resume:
            raise RaycellsError(f"{run.path} already holds a run: pass --resume to continue it, "
                                "or choose another --out.")
        saved = run.read_config()
        old, _ = settings_from_dict({**saved["settings"]["experiment"]}, origin=str(run.config))
        changed = differences(old, experiment)
        if changed:
            raise RaycellsError(f"{run.path} was run with other settings ({'; '.join(changed)}). "
                                "Resume with the same settings, or choose another --out.")
        return read_manifest(run.manifest), run.read_plan()
    if resume:
        raise RaycellsError(f"{run.path}: nothing to resume (no config.json). Start the run "
                            "without --resume.")
    if manifest is None:
        raise RaycellsError("a new run needs a dataset: pass --data.")
    frame = training_labels(manifest.frame, experiment.labels, manifest.root)
    dropped = small_classes(frame["label"], experiment.folds) if experiment.drop_small_classes else {}
    if experiment.folds_from:
        source = RunDir(experiment.folds_from)
        if not source.folds.is_file():
            raise RaycellsError(f"--folds-from {source.path}: no folds.parquet there; name a "
                                "raycells run directory.")
        plan = copy_folds(frame[~frame["label"].isin(dropped)], source.read_plan(),
                          folds=experiment.folds, origin=str(source.path))
    else:
        plan = make_folds(frame, folds=experiment.folds, seed=experiment.seed,
                          val_fraction=experiment.val_fraction,
                          drop_small=experiment.drop_small_classes)
    used = manifest.frame[~frame["label"].isin(dropped)].reset_index(drop=True)
    extra_counts: dict[str, int] = {}
    if experiment.extra_data:
        added = mapped_extra(read_extra(experiment.extra_data), load_mapping(experiment.extra_map),
                             set(plan["label"]))
        plan = with_extra(plan, added, experiment.folds)
        used = pd.concat([used, added[used.columns]], ignore_index=True)
        extra_counts = {str(k): int(n) for k, n in sorted(added["label"].value_counts().items())}
    used_manifest = Manifest(frame=used, root=manifest.root, layout=manifest.layout,
                             source=manifest.source, synthetic=manifest.synthetic,
                             skipped=manifest.skipped, unreadable=manifest.unreadable,
                             warnings=manifest.warnings)
    run.path.mkdir(parents=True, exist_ok=True)
    write_config(run, {
        "command": command,
        **(extra or {}),
        "seed": experiment.seed,
        "settings": {"experiment": as_dict(experiment), "placement": as_dict(placement)},
        "data": {"root": manifest.root, "layout": manifest.layout, "source": manifest.source,
                 "synthetic": manifest.synthetic, "labels": experiment.labels,
                 "images": len(used) - sum(extra_counts.values()),
                 "classes": sorted(plan["label"].unique()), "dropped_classes": dropped,
                 "extra_training_images": extra_counts},
    })
    write_manifest(used_manifest, run.manifest)
    write_plan(plan, run.folds)
    return used_manifest, plan


def _run_fold(run: RunDir, experiment: Experiment, resources: Resources, plan: pd.DataFrame,
              classes: list[str], labels: np.ndarray, cache: Path, fold: int, board,
              emit: Events) -> None:
    import ray

    started = time.time()
    emit("fold_started", fold=fold)
    parts = fold_parts(plan, fold)
    fold_dir = run.fold(fold)
    trainer = fold_trainer(experiment, resources, plan, classes, labels, cache, fold, board,
                           storage=fold_dir)
    result = fit(trainer)
    fit_seconds = time.time() - started
    if result.checkpoint is None:
        raise RaycellsError(f"fold {fold}: training ended without a checkpoint; see {fold_dir}.")
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(folder)
        checkpoint_file = Path(folder) / "state.pt"
        rows, probs = predict_rows(checkpoint_file, cache, experiment.image_size, labels,
                                   parts["test"], use_gpu=resources.gpus_per_worker > 0,
                                   threads=resources.threads, tta=experiment.tta)
    history = pd.DataFrame([
        {**{k: v for k, v in epoch.items() if k != "seen_per_class"},
         **{f"seen_{code}": n for code, n in epoch["seen_per_class"].items()}}
        for epoch in state["history"]])
    with atomic_path(fold_dir / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    predictions = predictions_frame(plan, classes, rows, probs, fold)
    with atomic_path(fold_dir / "predictions.parquet") as tmp:
        predictions.to_parquet(tmp, index=False)
    metrics = fold_metrics(labels[rows], probs.argmax(1), classes)
    metrics.update(fold=fold, best_epoch=state["best"]["epoch"], epochs=len(state["history"]),
                   restored_from_epochs=state["restored_from"], seconds=round(time.time() - started, 1),
                   fit_seconds=round(fit_seconds, 1),
                   seen_per_class_last_epoch=state["history"][-1]["seen_per_class"],
                   nodes=ray.get(board.nodes.remote(fold)))
    write_json(fold_dir / "metrics.json", metrics)  # last: marks the fold finished
    emit("fold_finished", fold=fold, metrics=metrics)


def _run_concurrently(jobs: list[Callable[[], None]], at_once: int) -> None:
    """Run `jobs`, `at_once` at a time, in daemon threads: an interrupt (Ctrl-C) in the main
    thread then ends the process without waiting for a fold to finish; its checkpoints remain
    for --resume. The first failure is raised once the running jobs end."""
    pending, errors, lock = list(jobs), [], threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                job = pending.pop(0)
            try:
                job()
            except BaseException as error:  # handed to the main thread
                with lock:
                    errors.append(error)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, at_once))]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if errors:
        raise errors[0]


def _watch(board, emit: Events, stop: threading.Event) -> None:
    import ray

    while not stop.wait(0.5):
        try:
            emit("status", folds=ray.get(board.snapshot.remote(), timeout=5))
        except Exception:  # the display is best effort; training goes on without it
            continue
