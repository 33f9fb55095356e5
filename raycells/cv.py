"""Stratified k-fold cross-validation on Ray: the driver.

`run_cv` prepares (or reopens) the run directory, builds the decoded-image cache with Ray Data,
and trains each unfinished fold with a Ray Train `TorchTrainer` (folds run concurrently when the
cluster has room for more than one). After a fold's training it predicts the test fold once with
the best model and writes history.csv, predictions.parquet and metrics.json.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cache import image_cache
from .errors import RaycellsError
from .files import atomic_path, write_json
from .folds import fold_parts, make_folds, small_classes
from .manifest import Manifest, read_manifest, training_labels, write_manifest
from .metrics import fold_metrics, summarize_folds
from .predict import load_checkpoint, predict_rows, predictions_frame
from .rundir import RunDir, write_config, write_plan
from .settings import Experiment, Placement, as_dict, differences, settings_from_dict

Events = Callable[..., None]
"""Called as events(kind, **info): prepared, cache, fold_started, status, fold_finished,
fold_skipped. The library never prints; the CLI renders these."""

DATA_CPUS = 1.0
"""CPUs each fold leaves to Ray Data (listing and reading the cache, sampling). Ray Data's file
listing task asks for a whole CPU, so less than one would stall the pipeline."""


@dataclass
class Resources:
    """How one fold's training is placed, and how many folds run at once."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    threads: int
    concurrent_folds: int


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
           only_folds: list[int] | None = None, events: Events | None = None) -> CvResult:
    """Cross-validate `experiment` into the run directory `out`.

    A new run needs `manifest`; `resume` reopens an existing run directory (refusing different
    settings) and trains only its unfinished folds, from their last checkpoint. `only_folds`
    restricts training to those folds (the others are left for a later call)."""
    emit = events or (lambda kind, **info: None)
    wanted = range(experiment.folds) if only_folds is None else sorted(set(only_folds))
    if any(not 0 <= k < experiment.folds for k in wanted):
        raise RaycellsError(f"folds are numbered 0 to {experiment.folds - 1}; got {list(wanted)}.")
    run = RunDir(out)
    manifest, plan = _prepare(run, experiment, placement, manifest, resume)
    classes = sorted(plan["label"].unique())
    emit("prepared", run_dir=str(run.path), images=len(plan), classes=classes,
         synthetic=manifest.synthetic, source=manifest.source)

    _init_ray(placement)
    cache = image_cache(manifest.frame, experiment.image_size,
                        progress=lambda done, total: emit("cache", done=done, total=total))
    todo = [k for k in wanted if not run.fold_finished(k)]
    skipped = [k for k in wanted if k not in todo]
    for k in skipped:
        emit("fold_skipped", fold=k)
    resources = plan_resources(placement, len(todo))
    emit("resources", **resources.__dict__)

    from .progress import ProgressBoard

    board = ProgressBoard.remote()
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


def plan_resources(placement: Placement, folds_to_run: int) -> Resources:
    """Size the training workers from the cluster: one worker per GPU with as many folds at once
    as the GPUs allow; on CPUs, one fold at a time using all cores but a share left to Ray Data."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1)), float(total.get("GPU", 0))
    gpus_per_worker = placement.gpus_per_worker if placement.gpus_per_worker is not None else (
        1.0 if gpus >= 1 else 0.0)
    if gpus_per_worker > 0:
        if gpus < gpus_per_worker:
            raise RaycellsError(f"--gpus-per-worker {gpus_per_worker:g} but the Ray cluster has "
                                f"{gpus:g} GPUs: lower it, or set it to 0 to train on CPUs.")
        slots = int(gpus // gpus_per_worker)
        workers = placement.workers or max(1, slots // max(1, min(folds_to_run, slots)))
        concurrent = max(1, min(folds_to_run, slots // workers))
        cpus_per_worker = placement.cpus_per_worker or max(
            1.0, min(8.0, (cpus / concurrent - DATA_CPUS * 2) / workers))
    else:
        workers = placement.workers or 1
        if placement.cpus_per_worker:
            cpus_per_worker = placement.cpus_per_worker
            concurrent = max(1, min(folds_to_run, int(cpus // (workers * cpus_per_worker + DATA_CPUS))))
        else:
            concurrent = 1
            cpus_per_worker = max(0.25, (cpus - DATA_CPUS) / workers)
    # Ray's CPU share is for scheduling; the threads may also use the data reserve, which the
    # pipeline leaves mostly idle once the images are cached.
    threads = max(1, math.ceil(cpus_per_worker)) if gpus_per_worker > 0 or concurrent > 1 else max(
        1, round(cpus_per_worker + DATA_CPUS / workers))
    if workers * cpus_per_worker > cpus:
        raise RaycellsError(f"{workers} workers x {cpus_per_worker:g} CPUs need more than the "
                            f"cluster's {cpus:g} CPUs: lower --workers.")
    return Resources(workers=workers, cpus_per_worker=round(cpus_per_worker, 3),
                     gpus_per_worker=gpus_per_worker, threads=threads,
                     concurrent_folds=concurrent)


def _prepare(run: RunDir, experiment: Experiment, placement: Placement,
             manifest: Manifest | None, resume: bool) -> tuple[Manifest, pd.DataFrame]:
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
    plan = make_folds(frame, folds=experiment.folds, seed=experiment.seed,
                      val_fraction=experiment.val_fraction, drop_small=experiment.drop_small_classes)
    used = manifest.frame[~frame["label"].isin(dropped)].reset_index(drop=True)
    used_manifest = Manifest(frame=used, root=manifest.root, layout=manifest.layout,
                             source=manifest.source, synthetic=manifest.synthetic,
                             skipped=manifest.skipped, unreadable=manifest.unreadable,
                             warnings=manifest.warnings)
    run.path.mkdir(parents=True, exist_ok=True)
    write_config(run, {
        "command": "cv",
        "seed": experiment.seed,
        "settings": {"experiment": as_dict(experiment), "placement": as_dict(placement)},
        "data": {"root": manifest.root, "layout": manifest.layout, "source": manifest.source,
                 "synthetic": manifest.synthetic, "images": len(used), "labels": experiment.labels,
                 "classes": sorted(plan["label"].unique()), "dropped_classes": dropped},
    })
    write_manifest(used_manifest, run.manifest)
    write_plan(plan, run.folds)
    return used_manifest, plan


def _init_ray(placement: Placement) -> None:
    """Join (or start) the Ray cluster quietly: Ray's own logs stay in its session folder."""
    import ray
    import ray.data

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(address=placement.address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def _run_fold(run: RunDir, experiment: Experiment, resources: Resources, plan: pd.DataFrame,
              classes: list[str], labels: np.ndarray, cache: Path, fold: int, board,
              emit: Events) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer

    from .pipeline import part_dataset
    from .worker import train_fold

    started = time.time()
    emit("fold_started", fold=fold)
    parts = fold_parts(plan, fold)
    class_counts = np.bincount(labels[parts["train"]], minlength=len(classes))
    expected = experiment.sampling.expected_copies(class_counts)
    copies = expected[labels] if experiment.sampling.resamples else None
    loss_weights = experiment.sampling.loss_weights(class_counts)
    images_per_epoch = float((class_counts * expected).sum())
    steps = max(1, int(images_per_epoch // experiment.batch_size))
    fold_dir = run.fold(fold)
    trainer = TorchTrainer(
        train_fold,
        train_loop_config={
            "experiment": as_dict(experiment), "fold": fold, "classes": classes, "board": board,
            "threads": resources.threads, "steps_per_epoch": steps,
            "loss_weights": None if loss_weights is None else loss_weights.tolist(),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.workers, use_gpu=resources.gpus_per_worker > 0,
            resources_per_worker={"CPU": resources.cpus_per_worker,
                                  **({"GPU": resources.gpus_per_worker} if resources.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name="checkpoint", storage_path=str(fold_dir.resolve()),
            failure_config=ray.train.FailureConfig(max_failures=3),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)),
        datasets={
            "train": part_dataset(cache, experiment.image_size, labels, parts["train"], copies,
                                  shuffle=True),
            "val": part_dataset(cache, experiment.image_size, labels, parts["val"]),
        },
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    fit_seconds = time.time() - started
    if result.checkpoint is None:
        raise RaycellsError(f"fold {fold}: training ended without a checkpoint; see {fold_dir}.")
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(folder)
        checkpoint_file = Path(folder) / "state.pt"
        rows, probs = predict_rows(checkpoint_file, cache, experiment.image_size, labels,
                                   parts["test"], use_gpu=resources.gpus_per_worker > 0,
                                   threads=resources.threads)
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
                   seen_per_class_last_epoch=state["history"][-1]["seen_per_class"])
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
