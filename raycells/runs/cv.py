"""Stratified k-fold cross-validation on Ray: the driver.

`run_cv` prepares (or reopens) the run directory, builds the decoded-image cache with Ray Data,
and trains each unfinished fold with a Ray Train trainer (folds run concurrently when the
cluster has room for more than one). After the last epoch the fold's first worker predicts the
test fold once with the best model; the driver then writes history.csv, predictions.parquet and
metrics.json.

With a search (`raycells cv --search`), selection is nested: for every outer fold k, a Ray Tune
search runs on fold k's training part only (trials scored on its inner validation split), its
winner is trained again on that training part and tested once on fold k. The settings each fold
chose go to fold-<k>/search/chosen.json and its trials to fold-<k>/search/trials.csv. The mean
± std over the folds then estimates the whole procedure, search included.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.folds import fold_parts
from ..data.manifest import Manifest
from ..data.schemes import scheme_groups
from ..errors import RaycellsError
from ..files import write_csv, write_json
from ..metrics import score_fold, summarize_folds
from ..settings import Experiment, Placement, as_dict, with_overrides
from ..train.checkpoint import load_checkpoint, read_test_probabilities, test_file
from ..train.progress import start_board
from ..train.trainer import CHECKPOINTS, Resources, fit, fold_trainer, plan_resources
from .results import predictions_frame, read_metrics, write_fold_results
from .rundir import RunDir
from .setup import Events, no_events, prepare_run, start_run
from .tracking import Tracker, check_server
from .tune import TRIALS_FILE, SearchPlan, check_search, search


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
           command: str = "cv", extra: dict[str, Any] | None = None,
           nested: SearchPlan | None = None, warnings: list[str] = ()) -> CvResult:
    """Cross-validate `experiment` into the run directory `out`.

    A new run needs `manifest`; `resume` reopens an existing run directory (refusing different
    settings) and trains only its unfinished folds, from their last checkpoint. `only_folds`
    restricts training to those folds (the others are left for a later call). `command` and
    `extra` go to a new run's config.json, `warnings` to its data warnings. `nested` searches
    settings inside every fold (see the module's docstring). The run is recorded in MLflow unless
    `placement.tracking` is off (`runs/tracking`). Events: those of every run, tracking (where the
    record goes) or tracking_failed, then fold_skipped, todo (the folds to train), fold_started,
    status (every fold's progress), epochs (history rows of a fold's finished epochs, as they
    come and all again before its end), fold_finished; with `nested` also
    search_started, the search's trial_result and trial_done, and search_finished."""
    emit = events or no_events
    wanted = range(experiment.folds) if only_folds is None else sorted(set(only_folds))
    if any(not 0 <= k < experiment.folds for k in wanted):
        raise RaycellsError(f"folds are numbered 0 to {experiment.folds - 1}; got {list(wanted)}.")
    if experiment.transfer is not None and command != "transfer":
        raise RaycellsError(f"these settings are a transfer's (from {experiment.transfer.source}): "
                            "run them with `raycells transfer --from SOURCE --config FILE`, which "
                            "keeps the source network in the run and checks what it trained on.")
    if nested is not None:
        check_search(experiment, nested.space, samples=nested.samples, metric=nested.metric)
        extra = {**(extra or {}), "search": asdict(nested)}
    if placement.tracking and placement.mlflow_uri:
        check_server(placement.mlflow_uri)
    run = RunDir(out)
    manifest, plan = prepare_run(run, experiment, placement, manifest, resume, command=command,
                                 extra=extra, warnings=warnings)
    classes, cache = start_run(run, manifest, plan, experiment, placement, emit)
    todo = [k for k in wanted if not run.fold_finished(k)]
    skipped = [k for k in wanted if k not in todo]
    for k in skipped:
        emit("fold_skipped", fold=k)
    emit("todo", folds=todo)
    # Folds of different widths train the same experiment only when the batch is the step's.
    resources = plan_resources(placement, 1 if nested else len(todo),
                               pack=experiment.batch_scaling == "global")
    if nested is None:
        emit("resources", **resources.__dict__)

    tracker = Tracker.open(run, placement, run.read_config(), emit)
    board = start_board()
    stop = threading.Event()
    watchers = [threading.Thread(target=_watch, args=(board, emit, stop), daemon=True),
                threading.Thread(target=_follow, args=(board, tracker, emit, stop), daemon=True)]
    for watcher in watchers:
        watcher.start()
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    try:
        if nested is None:
            widths = resources.widths or [resources.workers] * len(todo)
            _run_packed([(lambda k=k, w=w: _run_fold(
                run, experiment, replace(resources, workers=w), plan, classes, labels, cache, k,
                board, tracker, emit), w) for k, w in zip(todo, widths)], slots=resources.slots)
        else:  # one fold at a time: its search fills the cluster
            for k in todo:
                chosen = _choose(run, experiment, placement, nested, plan, classes, cache, k, emit)
                emit("resources", **resources.__dict__)
                # In a daemon thread like every fold, so that Ctrl-C ends the process at once.
                _run_packed([(lambda k=k, chosen=chosen: _run_fold(
                    run, with_overrides(experiment, chosen), resources, plan, classes, labels,
                    cache, k, board, tracker, emit, chosen=chosen), 1)], slots=1)
    except BaseException as error:
        _stop_watching(stop, watchers)  # then the record is closed with nothing more to log
        tracker.finish("FAILED" if isinstance(error, Exception) else "KILLED")  # Ctrl-C, SIGTERM
        raise
    _stop_watching(stop, watchers)
    per_fold = {k: read_metrics(run.fold(k)) for k in range(experiment.folds) if run.fold_finished(k)}
    summary = summarize_folds(per_fold)
    tracker.finish("FINISHED", summary)
    return CvResult(run_dir=run.path, classes=classes, per_fold=per_fold, summary=summary,
                    skipped=skipped)


def _choose(run: RunDir, experiment: Experiment, placement: Placement, nested: SearchPlan,
            plan: pd.DataFrame, classes: list[str], cache: Path, fold: int,
            emit: Events) -> dict[str, Any]:
    """The settings outer fold `fold` chose by a search on its training part (read back when a
    resumed run's search already finished)."""
    folder = run.search(fold)
    chosen = run.chosen(fold)
    if chosen is not None:
        return chosen
    emit("search_started", fold=fold)
    if (folder / "tune").exists():  # an interrupted search starts again
        shutil.rmtree(folder / "tune")
    found = search(experiment, placement, nested, plan=plan, classes=classes, cache=cache,
                   folds=[fold], storage=folder, emit=emit)
    write_csv(found.trials, folder / TRIALS_FILE)
    write_json(folder / "chosen.json", {"fold": fold, "chosen": found.best, "score": found.score,
                                      "metric": nested.metric, "trial": found.trial})
    emit("search_finished", fold=fold, chosen=found.best, score=found.score)
    return found.best


def _run_fold(run: RunDir, experiment: Experiment, resources: Resources, plan: pd.DataFrame,
              classes: list[str], labels: np.ndarray, cache: Path, fold: int, board,
              tracker: Tracker, emit: Events, chosen: dict[str, Any] | None = None) -> None:
    import ray

    started = time.time()
    emit("fold_started", fold=fold)
    tracker.fold_started(fold, as_dict(experiment))
    parts = fold_parts(plan, fold)
    fold_dir = run.fold(fold)
    trainer = fold_trainer(experiment, resources, plan, classes, labels, cache, fold, board,
                           storage=fold_dir, test=True)
    result = fit(trainer)  # trains, then predicts the test part with the best epoch's network
    fit_seconds = time.time() - started
    if result.checkpoint is None:
        raise RaycellsError(f"fold {fold}: training ended without a checkpoint; see {fold_dir}.")
    with result.checkpoint.as_directory() as folder:
        progress = load_checkpoint(folder).progress
    rows, probs = read_test_probabilities(fold_dir / CHECKPOINTS, progress.best["file"])
    if not np.array_equal(rows, np.sort(parts["test"])):
        raise RaycellsError(f"{fold_dir / CHECKPOINTS}: the test predictions there are not of "
                            f"fold {fold}'s test part. Resume the run to predict it again.")
    history = pd.DataFrame([
        {**{k: v for k, v in epoch.items() if k != "seen_per_class"},
         **{f"seen_{code}": n for code, n in epoch["seen_per_class"].items()}}
        for epoch in progress.history])
    metrics = score_fold(labels[rows], probs, classes, groups=scheme_groups(classes))
    metrics.update(fold=fold, best_epoch=progress.best["epoch"], epochs=len(progress.history),
                   restored_from_epochs=progress.restored_from,
                   seconds=round(time.time() - started, 1), fit_seconds=round(fit_seconds, 1),
                   seen_per_class_last_epoch=progress.history[-1]["seen_per_class"],
                   nodes=ray.get(board.nodes.remote(fold)),
                   **({"chosen": chosen} if chosen is not None else {}))
    write_fold_results(fold_dir, predictions_frame(plan, classes, rows, probs, fold), metrics,
                       history)
    (fold_dir / CHECKPOINTS / test_file(progress.best["file"])).unlink(missing_ok=True)
    tracker.fold_finished(fold, metrics, progress.history)
    emit("epochs", fold=fold, records=progress.history)  # all of them, before the fold's end
    emit("fold_finished", fold=fold, metrics=metrics)


def _run_packed(jobs: list[tuple[Callable[[], None], int]], slots: int) -> None:
    """Run `jobs` ((job, workers) pairs) in order, each as soon as its workers fit in the
    `slots` the running jobs leave free, in daemon threads: an interrupt (Ctrl-C) in the main
    thread then ends the process without waiting for a fold to finish; its checkpoints remain
    for --resume. No job starts after a failure; the first is raised once the running jobs end."""
    free, errors, ready = slots, [], threading.Condition()

    def work(job: Callable[[], None], workers: int) -> None:
        nonlocal free
        try:
            job()
        except BaseException as error:  # handed to the main thread
            errors.append(error)
        finally:
            with ready:
                free += workers
                ready.notify_all()

    threads = []
    for job, workers in jobs:
        with ready:
            while free < min(workers, slots) and not errors:
                ready.wait(timeout=0.5)  # short waits: Ctrl-C reaches the main thread
            if errors:
                break
            free -= min(workers, slots)
        threads.append(threading.Thread(target=work, args=(job, min(workers, slots)),
                                        daemon=True))
        threads[-1].start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if errors:
        raise errors[0]


def _stop_watching(stop: threading.Event, watchers: list[threading.Thread]) -> None:
    stop.set()
    for watcher in watchers:
        watcher.join()


def _follow(board, tracker: Tracker, emit: Events, stop: threading.Event) -> None:
    """Pass on the epochs rank 0 posts to the board, every second until `stop`: as `epochs`
    events, and to the MLflow record."""
    import ray

    seen: dict[int, int] = {}
    while not stop.wait(1.0):
        try:
            new = ray.get(board.epochs.remote(seen), timeout=5)
        except Exception:  # best effort too; a fold's end passes on and logs what was missed
            continue
        for fold, records in new.items():
            seen[fold] = seen.get(fold, 0) + len(records)
            emit("epochs", fold=fold, records=records)
            if tracker.active:
                tracker.epochs(fold, records)


def _watch(board, emit: Events, stop: threading.Event) -> None:
    import ray

    while not stop.wait(0.5):
        try:
            emit("status", folds=ray.get(board.snapshot.remote(), timeout=5))
        except Exception:  # the display is best effort; training goes on without it
            continue
