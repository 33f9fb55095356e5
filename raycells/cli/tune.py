"""`raycells tune`: a Ray Tune search over sampling policies (or any setting), scored on the inner
validation splits, ending in best.json for `raycells cv --config best.json`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import RaycellsError
from ..settings import settings_text
from .common import console, reported_errors, with_dataset
from .live import LiveDisplay
from .options import (
    TRAINING_SETTINGS,
    TRANSFER_PHASES,
    AllowOverlap,
    Config,
    GraceEpochs,
    Metric,
    Out,
    Preset,
    Samples,
    SourceFold,
    SourceFrom,
    Space,
    search_space,
    takes_settings,
)

if TYPE_CHECKING:
    from ..runs.tune import TuneResult

TrialFolds = Annotated[int, typer.Option(help="Folds each trial trains (its score: their mean).")]


@takes_settings(*TRAINING_SETTINGS, *TRANSFER_PHASES)
def tune(flags: dict[str, Any], space: Space = None, metric: Metric = "macro_f1",
         samples: Samples = 1, trial_folds: TrialFolds = 1, grace_epochs: GraceEpochs = None,
         from_: SourceFrom = None, fold: SourceFold = None, preset: Preset = None,
         config: Config = None, out: Out = None, allow_overlap: AllowOverlap = False) -> None:
    """Search sampling policies (or other settings) with Ray Tune and ASHA; writes best.json.
    With --from, every trial is a transfer from that network (search lr, epochs, transfer.*)."""
    from ..runs.setup import open_run, run_settings
    from ..runs.source import choose_source, transfer_flags
    from ..runs.tune import check_search, run_tune

    with reported_errors():
        searched = search_space(config, space)
        run = open_run(out, "tune", resumable=False)
        source = None
        if from_ is not None:
            source = choose_source(from_, fold=fold, model=flags["model"])
            flags = transfer_flags(source, run.path, flags)
        elif any(flags.get(name) is not None for name in TRANSFER_PHASES) or fold is not None:
            raise RaycellsError("--head-epochs, --head-lr, --freeze-batchnorm and --fold describe "
                                "a transfer: add --from with the source network.")
        experiment, placement = run_settings(
            run, flags, preset=preset or ("transfer" if source else None), config=config,
            ignore=("space",))
        check_search(experiment, searched, samples=samples, trial_folds=trial_folds, metric=metric)
        experiment, manifest = with_dataset(experiment)
        display = _Trials()
        result = display.run(
            lambda: run_tune(run.path, experiment, placement, searched, manifest=manifest,
                             samples=samples, trial_folds=trial_folds, metric=metric,
                             grace_epochs=grace_epochs, source=source,
                             allow_overlap=allow_overlap, events=display.event),
            run.path, f"Finished trials are in {run.path / 'tune'}; start a new search with "
                      "another --out.", command="tune")
    _final_table(result)


class _Trials(LiveDisplay):
    """A live table of trials: searched settings, fold, epoch, last validation score."""

    unit = "trial"

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, dict[str, Any]] = {}

    def _on_trial_result(self, trial, params, fold, epoch, value) -> None:
        row = self._rows.setdefault(trial, {"params": params, "best": {}})
        row.update(fold=fold, epoch=epoch, value=value, state="running")
        if value is not None:
            row["best"][fold] = max(value, row["best"].get(fold, value))

    def _on_trial_done(self, trial, failed) -> None:
        if trial in self._rows:
            self._rows[trial]["state"] = "failed" if failed else "ended"

    def _table(self) -> Table:
        table = Table(title="Trials (validation scores)", title_justify="left")
        for header in ("trial", "settings", "state", "fold", "epoch", "last", "best so far"):
            table.add_column(header, justify="left" if header in ("trial", "settings", "state") else "right")
        for trial, row in self._rows.items():
            best = row["best"]
            table.add_row(trial, settings_text(row["params"]), row.get("state", ""),
                          str(row.get("fold", "")), str(row.get("epoch", "")),
                          f"{row['value']:.3f}" if row.get("value") is not None else "",
                          f"{sum(best.values()) / len(best):.3f}" if best else "")
        return table


def _final_table(result: TuneResult) -> None:
    trials = result.trials
    keys = list(result.best)
    table = Table(title=f"Trials by {result.metric} on the inner validation splits ({result.run_dir})",
                  title_justify="left")
    for header in ("rank", *keys, "score", "epochs", "status"):
        table.add_column(header, justify="right" if header in ("rank", "score", "epochs") else "left")
    for rank, values in enumerate(trials.to_dict("records"), start=1):
        table.add_row(str(rank), *(str(values[k]) for k in keys),
                      "" if values["score"] != values["score"] else f"{values['score']:.3f}",
                      str(values["epochs"]), values["status"])
    console.print(table)
    best = json.loads(result.best_file.read_text())
    used = best["search_images"]
    folds = ", ".join(map(str, used["folds"]))
    command = _command_for(result)
    console.print(f"Best: {settings_text(result.best)} ({result.best_file}).\n"
                  f"Run it: `{command} --config {result.best_file}` on other images. The search "
                  f"trained and scored its trials on {used['images']:,} images (all but test fold "
                  f"{folds}): a test score on any of them reports the winner on images that chose "
                  "it, so that command refuses them without --allow-overlap. For a score of the "
                  f"whole procedure, search included, use nested selection: `{command} --search "
                  "...` (same syntax as --space).", highlight=False)


def _command_for(result: TuneResult) -> str:
    """The command that runs the search's winner: a transfer from the search's own source, or cv."""
    from ..runs.rundir import RunDir

    source = RunDir(result.run_dir).read_config().get("transfer_source")
    if not source:
        return "raycells cv"
    which = (f"--fold {source['fold']}" if source["fold"] is not None
             else f"--model {source['model']}")
    return f"raycells transfer --from {source['from']} {which}"
