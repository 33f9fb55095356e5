"""Search the sampling policy (or any other setting) with Ray Tune.

`search` is the one search both commands use: `raycells tune` (explore: the first `trial_folds`
folds of a plan, the winner to best.json, whose images the search used recorded there) and
`raycells cv --search` (nested selection: a search inside every outer fold's training part,
`raycells.runs.cv`). Each trial trains folds of the plan with its own settings and is scored on
those folds' inner validation splits only: no test fold is predicted here. Trials
report after every epoch, fold after fold in the same order for every trial, so ASHA compares
trials at the same fold and epoch and stops poor ones early. A trial's score is the mean over
its folds of the validation metric at the epoch each fold would keep (`keep_epoch`). The winner's settings go to
best.json, which `raycells cv --config best.json` then evaluates on every test fold.

A search space maps setting names (dotted for nested ones: `sampling.policy`, `augment.noise`)
to a list of values (every value is tried: a grid) or to a range, `{"loguniform": [lo, hi]}`,
`{"uniform": [lo, hi]}` or `{"randint": [lo, hi]}` (drawn `samples` times per grid point).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.manifest import Manifest, read_manifest
from ..errors import RaycellsError
from ..files import write_csv, write_json
from ..settings import FINE_TUNING, SEARCH_METRICS, Experiment, Placement, as_dict, with_overrides
from ..train.phases import training_epochs, training_phases
from ..train.progress import start_board
from ..train.trainer import Resources, fit, fold_trainer, plan_resources
from .rundir import RunDir
from .setup import Events, no_events, prepare_run, start_run
from .source import Source, keep_source

RANGES = ("loguniform", "uniform", "randint")
TRIAL_CPUS = 0.05
"""What a trial itself holds: it only waits for its Ray Train trainer, which holds the real share."""
TRAIN_RUN = "train_run"
"""Reported with every epoch's metrics: the id of the Train run that trained it."""
BEST_FILE = "best.json"
TRIALS_FILE = "trials.csv"


@dataclass
class TuneResult:
    run_dir: Path
    metric: str
    trials: pd.DataFrame
    """One row per trial: trial, status, the searched settings, score_fold_<k>, score, epochs."""
    best: dict[str, Any]
    """The best trial's searched settings."""
    best_file: Path


def check_search(experiment: Experiment, space: dict[str, Any], *, samples: int = 1,
                 trial_folds: int = 1, metric: str = "macro_f1") -> None:
    """Refuse a search that cannot run, before any work: an unknown metric, a number of trial
    folds or samples out of range, a bad space."""
    if metric not in SEARCH_METRICS:
        raise RaycellsError(f"metric {metric!r}: choose {' or '.join(SEARCH_METRICS)}.")
    if not 1 <= trial_folds <= experiment.folds:
        raise RaycellsError(f"--trial-folds {trial_folds}: between 1 and --folds ({experiment.folds}).")
    if samples < 1:
        raise RaycellsError(f"--samples {samples}: at least 1.")
    check_space(experiment, space)


def check_space(base: Experiment, space: dict[str, Any]) -> None:
    """Refuse a space with unknown settings or values the settings would not accept."""
    if not space:
        raise RaycellsError("the search space is empty: give at least one setting to search, "
                            'such as --space "sampling.policy=none|oversample|sqrt".')
    for alias, name in FINE_TUNING.items():
        if alias in space and name in space:
            raise RaycellsError(f"search space: {alias} and {name} are the same setting (the "
                                "fine-tuning phase's): search it once.")
    for key, values in space.items():
        if isinstance(values, dict):
            if len(values) != 1 or next(iter(values)) not in RANGES:
                raise RaycellsError(f"search space {key}: a range is one of {', '.join(RANGES)} "
                                    f"with [low, high], not {values!r}.")
            (kind, bounds), = values.items()
            if not (isinstance(bounds, list | tuple) and len(bounds) == 2 and bounds[0] < bounds[1]):
                raise RaycellsError(f"search space {key}: {kind} needs [low, high] with low < high.")
            candidates = list(bounds)
        elif isinstance(values, list | tuple) and values:
            candidates = list(values)
        else:
            raise RaycellsError(f"search space {key}: give a list of values or a range, not {values!r}.")
        for value in candidates:
            with_overrides(base, {key: value})


def run_tune(out: str | Path, experiment: Experiment, placement: Placement,
             space: dict[str, Any], *, manifest: Manifest, samples: int = 1,
             trial_folds: int = 1, metric: str = "macro_f1", grace_epochs: int | None = None,
             source: Source | None = None, allow_overlap: bool = False,
             events: Events | None = None) -> TuneResult:
    """Search `space` around `experiment` into the run directory `out` (a new one). With
    `source` (and `experiment` made with `source_settings`), every trial is a transfer from it,
    and the space may hold the transfer settings (`transfer.head_lr`, `transfer.head_epochs`,
    `transfer.freeze_batchnorm`; the fine-tuning phase's `lr` and `epochs`, also named
    `transfer.lr` and `transfer.epochs`). Events: those
    of every run, then trial_result (every epoch of every trial) and trial_done."""
    emit = events or no_events
    check_search(experiment, space, samples=samples, trial_folds=trial_folds, metric=metric)
    run = RunDir(out)
    warnings = [] if source is None else keep_source(run, source, manifest,
                                                     allow_overlap=allow_overlap)
    manifest, plan = prepare_run(run, experiment, placement, manifest, resume=False,
                                 command="tune", resumable=False, warnings=warnings, extra={
                                     "tune": {"space": space, "samples": samples,
                                              "trial_folds": trial_folds, "metric": metric},
                                     **({"transfer_source": source.summary()} if source else {})})
    classes, cache = start_run(run, manifest, plan, experiment, placement, emit)
    folds = list(range(trial_folds))
    found = search(experiment, placement, SearchPlan(space, samples, metric, grace_epochs),
                   plan=plan, classes=classes, cache=cache, folds=folds, storage=run.path,
                   emit=emit)
    write_csv(found.trials, run.path / TRIALS_FILE)
    best_file = run.path / BEST_FILE
    write_json(best_file, {
        "command": "tune", "metric": metric, "score": found.score, "trial": found.trial,
        "trial_folds": trial_folds, "best": found.best,
        "search_images": searched_images(run, plan, folds),
        "settings": {"experiment": as_dict(with_overrides(experiment, found.best)),
                     "placement": as_dict(placement)},
    })
    return TuneResult(run_dir=run.path, metric=metric, trials=found.trials, best=found.best,
                      best_file=best_file)


@dataclass(frozen=True)
class SearchPlan:
    """What to search and how (`raycells cv --search`, `raycells tune`)."""

    space: dict[str, Any]
    samples: int = 1
    metric: str = "macro_f1"
    grace_epochs: int | None = None

    @classmethod
    def of_run(cls, run: RunDir) -> SearchPlan | None:
        """The nested search that `run` records in its config.json (None: it has none)."""
        recorded = run.read_config().get("search")
        return cls(**recorded) if recorded else None


@dataclass
class Search:
    """What a search found."""

    trials: pd.DataFrame
    """One row per trial, best first (see TuneResult.trials)."""
    best: dict[str, Any]
    """The winner's searched settings, as Tune drew them."""
    score: float
    trial: str


def search(experiment: Experiment, placement: Placement, wanted: SearchPlan, *,
           plan: pd.DataFrame, classes: list[str], cache: Path, folds: list[int],
           storage: Path, emit: Events = no_events) -> Search:
    """Search `wanted.space` around `experiment` with Ray Tune and ASHA: every trial trains
    `folds` of `plan` (their training parts) and is scored on their inner validation splits
    only; no test fold is predicted. The Tune experiment goes to `storage`/tune."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    space, samples, metric = wanted.space, wanted.samples, wanted.metric
    grace_epochs = wanted.grace_epochs
    resources = plan_resources(placement, folds_to_run=_grid_size(space) * samples,
                               driver_cpus=TRIAL_CPUS)
    emit("resources", **resources.__dict__)
    most_epochs, grace = _rungs(experiment, space)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, base=experiment, plan=plan, classes=classes,
                             cache=str(cache), resources=resources, folds=folds,
                             trials_dir=str(storage.resolve() / "tune")),
        {"CPU": TRIAL_CPUS})
    tuner = tune.Tuner(
        trainable,
        param_space={key: _domain(values) for key, values in space.items()},
        tune_config=tune.TuneConfig(
            metric=f"val_{metric}", mode="max", num_samples=samples,
            max_concurrent_trials=resources.concurrent_folds,
            scheduler=ASHAScheduler(time_attr="training_iteration",
                                    max_t=len(folds) * most_epochs,
                                    grace_period=grace_epochs or grace,
                                    reduction_factor=2)),
        run_config=tune.RunConfig(name="tune", storage_path=str(storage.resolve()), verbose=0,
                                  callbacks=[_progress_callback(emit, metric)]),
    )
    grid = tuner.fit()
    for result in grid:  # the trials' processes are gone once fit returns
        _release_leftovers(result.metrics)
    trials = _trial_table(grid, list(space), metric, len(folds), experiment)
    ranked = trials[trials["status"] == "complete"]
    if ranked.empty:
        raise RaycellsError(f"no trial completed; see {storage / 'tune'} and the run's ray.log.")
    winner = ranked.iloc[0]  # the table is sorted by score
    best = {key: value for result in grid if Path(result.path).name == winner["trial"]
            for key, value in result.config.items()}  # as Tune drew them, not as the table holds them
    return Search(trials=trials, best=best, score=float(winner["score"]), trial=winner["trial"])


def searched_images(run: RunDir, plan: pd.DataFrame, folds: list[int]) -> dict[str, Any]:
    """Which images a search on `folds` of `plan` used to choose its winner: every image outside
    those folds' test parts (training and inner validation). A test score on any of them is not
    a test of the chosen settings."""
    test = plan["fold"].isin(folds)
    used = ~test
    return {"run": str(run.path.resolve()), "folds": folds, "images": int(used.sum()),
            "untouched_test_images": int(test.sum()),
            "note": "the search trained and scored its trials on these images: a cross-validation "
                    "whose test folds hold them reports the winner on images that chose it. "
                    "`raycells cv --search` selects inside each fold instead."}


def search_overlap(config_file: str | Path, frame: pd.DataFrame) -> tuple[int, str] | None:
    """For settings read from `config_file`: if a search chose them (a best.json), how many images
    of `frame` (by sha1) the search used, and the search's run directory; None otherwise."""
    try:
        chosen = json.loads(Path(config_file).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(chosen, dict) or chosen.get("command") != "tune":
        return None
    recorded = chosen.get("search_images", {})
    candidates = [Path(recorded["run"])] if recorded.get("run") else []
    candidates.append(Path(config_file).resolve().parent)
    source = next((RunDir(path) for path in candidates if RunDir(path).folds.is_file()), None)
    if source is None:
        raise RaycellsError(f"{config_file} holds settings chosen by a search, but the search's run "
                            f"directory ({', '.join(map(str, candidates))}) is gone, so whether "
                            "this run tests on images the search used cannot be checked. Pass "
                            "--allow-overlap to go on anyway.")
    plan = source.read_plan()
    folds = recorded.get("folds", list(range(int(chosen.get("trial_folds", 1)))))
    used_paths = set(plan.loc[~plan["fold"].isin(folds), "path"])
    manifest = read_manifest(source.manifest).frame
    used = set(manifest.loc[manifest["path"].isin(used_paths), "sha1"])
    return int(frame["sha1"].isin(used).sum()), str(source.path)


def _trial(config: dict[str, Any], *, base: Experiment, plan: pd.DataFrame,
           classes: list[str], cache: str, resources: Resources, folds: list[int],
           trials_dir: str) -> None:
    """One Tune trial: train its folds one after another; every epoch's report reaches Tune.

    Each fold's checkpoints go straight to the trial's folder in the run directory, which every
    node sees on a cluster; Tune's own trial folder is a staging copy on the trial's node."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    experiment = with_overrides(base, config)
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    class ReportWithRun(TuneReportCallback):
        """Tune's report callback, plus the Train run's id (see `_release_leftovers`)."""

        def after_report(self, run_context, metrics, checkpoint):
            super().after_report(run_context, [{**metrics[0], TRAIN_RUN: run_context.run_id}],
                                 checkpoint)

    board = start_board()
    trial_dir = Path(trials_dir) / Path(tune.get_context().get_trial_dir()).name
    for fold in folds:
        trainer = fold_trainer(experiment, resources, plan, classes, labels, Path(cache), fold,
                               board, storage=trial_dir / f"fold-{fold}",
                               callbacks=[ReportWithRun()])
        fit(trainer)


def _release_leftovers(result: dict | None) -> None:
    """Free what the Train run behind a finished trial's last report may have left behind.

    A trial that Tune stops (ASHA, or at max_t right after its last report) is killed with its
    Ray Train run, before the run can release two things: the worker resources it registered
    with Ray Data's autoscaling coordinator (for 180 s Ray Data then counts those CPUs as taken)
    and the placement group of its workers (Ray Train's cleaner for that case needs the Ray
    dashboard, which raycells does not start). On a small machine either leaves the next trial's
    data pipeline without a CPU: "Cluster resources are not enough to run any task". Called once
    the trial's processes are gone (when the next trial starts, and after the search); both
    steps are harmless for a run that ended on its own. Best effort."""
    import ray
    from ray._raylet import PlacementGroupID
    from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    result = result or {}
    try:
        if result.get(TRAIN_RUN):
            ray.get(get_or_create_autoscaling_coordinator().cancel_request.remote(
                requester_id=f"train-{result[TRAIN_RUN]}"), timeout=10)
        if result.get("placement_group"):
            remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(result["placement_group"])))
    except Exception:  # another Ray version's internals: what is left expires or stays
        pass


def _trial_table(grid, keys: list[str], metric: str, trial_folds: int,
                 base: Experiment) -> pd.DataFrame:
    """One row per trial (`trial_folds`: how many folds each trains, each `base` with the trial's
    settings), best score first."""
    rows = []
    for result in grid:
        history = result.metrics_dataframe
        config = result.config or {}
        row = {"trial": Path(result.path).name, **{key: config.get(key) for key in keys}}
        done = 0
        trial = with_overrides(base, {key: config[key] for key in keys if key in config})
        if history is not None and f"val_{metric}" in history:
            history = history.drop_duplicates(["fold", "epoch"], keep="last")
            per_fold = kept_scores(history, f"val_{metric}", trial.keep_epoch)
            for fold, value in per_fold.items():
                row[f"score_fold_{int(fold)}"] = float(value)
            row["score"] = float(per_fold.mean())
            done = len(history)
        row["epochs"] = done
        epochs = training_epochs(trial)
        row["status"] = ("failed" if result.error else
                         "complete" if done >= trial_folds * epochs else "stopped early")
        rows.append(row)
    table = pd.DataFrame(rows)
    if "score" not in table:
        table["score"] = math.nan
    return table.sort_values("score", ascending=False, na_position="last",
                             kind="stable").reset_index(drop=True)


def kept_scores(history: pd.DataFrame, column: str, keep: str) -> pd.Series:
    """Each fold's `column` at the epoch its network would be kept at (`keep_epoch`): the last
    epoch trained, or the best (highest validation macro F1, then lowest loss, as the training
    loop keeps it). A trial is scored on the network a run with its settings would test."""
    def kept(fold: pd.DataFrame) -> float:
        if keep == "last":
            return float(fold.loc[fold["epoch"].idxmax(), column])
        ranked = fold.sort_values(["val_macro_f1", "val_loss", "epoch"],
                                  ascending=[False, True, True], kind="stable")
        return float(ranked.iloc[0][column])

    return pd.Series({fold: kept(part) for fold, part in history.groupby("fold")})


def _domain(values: Any):
    from ray import tune

    if isinstance(values, dict):
        (kind, (low, high)), = values.items()
        return getattr(tune, kind)(low, high)
    return tune.grid_search(list(values))


def _rungs(experiment: Experiment, space: dict[str, Any]) -> tuple[int, int]:
    """ASHA's last rung and grace period, in epochs of one fold: the longest trial the space can
    make (the largest value of each searched epoch count), and half of its last phase after the
    phases before it (a transfer's trials differ only once fine-tuning starts)."""
    largest = {key: max(next(iter(values.values())) if isinstance(values, dict) else values)
               for key, values in space.items()
               if key in ("epochs", "transfer.epochs", "transfer.head_epochs")}
    longest = with_overrides(experiment, largest)
    last = training_phases(longest)[-1]
    return training_epochs(longest), last.first_epoch + max(1, last.epochs // 2)


def _grid_size(space: dict[str, Any]) -> int:
    return math.prod(len(v) for v in space.values() if not isinstance(v, dict))


def _progress_callback(emit: Events, metric: str):
    from ray import tune

    class Progress(tune.Callback):
        """Hands every trial's epoch results to the CLI."""

        def __init__(self, emit: Events, metric: str):
            self.emit, self.metric = emit, metric
            self.freed: set[str] = set()

        def __getstate__(self):  # Tune saves its callbacks; the display stays in this process
            return {"emit": lambda kind, **info: None, "metric": self.metric, "freed": self.freed}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.emit("trial_result", trial=trial.trial_id, params=dict(trial.config),
                      fold=result.get("fold"), epoch=result.get("epoch"),
                      value=result.get(f"val_{self.metric}"))

        def on_trial_start(self, iteration, trials, trial, **info):
            for finished in trials:  # their processes are gone by now
                if finished.status in ("TERMINATED", "ERROR") and finished.trial_id not in self.freed:
                    _release_leftovers(finished.last_result)
                    self.freed.add(finished.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.emit("trial_done", trial=trial.trial_id, failed=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.emit("trial_done", trial=trial.trial_id, failed=True)

    return Progress(emit, metric)
