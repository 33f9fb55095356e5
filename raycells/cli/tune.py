"""`raycells tune`: a Ray Tune search over sampling policies (or any setting), scored on the inner
validation splits, ending in best.json for `raycells cv --config best.json`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import RaycellsError
from ..runs.setup import open_run, run_settings
from ..runs.tune import METRICS, TuneResult, check_search, run_tune
from ..settings import read_config_file
from .common import console, reported_errors, with_dataset
from .live import LiveDisplay
from .options import TRAINING_SETTINGS, Config, Out, Preset, takes_settings

Space = Annotated[list[str] | None, typer.Option(
    "--space", help='A setting to search: "sampling.policy=none|oversample|sqrt" (every value is '
                    'tried) or "lr=loguniform(0.0003,0.003)" (also uniform, randint). Repeat for '
                    'more settings; a config file may hold a "space" table instead.',
    show_default=False)]
Metric = Annotated[str, typer.Option(
    help=f"What trials are ranked by, on the inner validation splits: {' or '.join(METRICS)}.")]
Samples = Annotated[int, typer.Option(help="Draws of the ranges per combination of listed values.")]
TrialFolds = Annotated[int, typer.Option(help="Folds each trial trains (its score: their mean).")]
GraceEpochs = Annotated[int | None, typer.Option(
    help="Epochs before ASHA may stop a trial (default: half of --epochs).", show_default=False)]


@takes_settings(*TRAINING_SETTINGS)
def tune(flags: dict[str, Any], space: Space = None, metric: Metric = "macro_f1",
         samples: Samples = 1, trial_folds: TrialFolds = 1, grace_epochs: GraceEpochs = None,
         preset: Preset = None, config: Config = None, out: Out = None) -> None:
    """Search sampling policies (or other settings) with Ray Tune and ASHA; writes best.json."""
    with reported_errors():
        searched = read_config_file(config).get("space", {}) if config else {}
        if not isinstance(searched, dict):
            raise RaycellsError(f"{config}: 'space' must be a table of settings to search.")
        searched = {**searched, **parse_space_flags(space or [])}
        run = open_run(out, "tune", resumable=False)
        experiment, placement = run_settings(run, flags, preset=preset, config=config,
                                             ignore=("space",))
        check_search(experiment, searched, samples=samples, trial_folds=trial_folds, metric=metric)
        experiment, manifest = with_dataset(experiment)
        display = _Trials()
        result = display.run(
            lambda: run_tune(run.path, experiment, placement, searched, manifest=manifest,
                             samples=samples, trial_folds=trial_folds, metric=metric,
                             grace_epochs=grace_epochs, events=display.event),
            run.path, f"Finished trials are in {run.path / 'tune'}; start a new search with "
                      "another --out.")
    _final_table(result)


def parse_space_flags(specs: list[str]) -> dict[str, Any]:
    """--space values ("key=a|b|c", "key=loguniform(lo,hi)") as a search space."""
    space: dict[str, Any] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key, text = key.strip().replace("-", "_"), text.strip()
        if not sep or not key or not text:
            raise RaycellsError(f'--space {spec!r}: expected key=a|b|c or key=loguniform(low,high).')
        if text.endswith(")") and "(" in text:
            kind, _, inner = text[:-1].partition("(")
            bounds = [_value(part) for part in inner.split(",")]
            space[key] = {kind.strip(): bounds}
        else:
            space[key] = [_value(part) for part in text.split("|")]
    return space


def _value(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return {"null": None, "true": True, "false": False}.get(text.lower(), text)


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
            table.add_row(trial, _settings_text(row["params"]), row.get("state", ""),
                          str(row.get("fold", "")), str(row.get("epoch", "")),
                          f"{row['value']:.3f}" if row.get("value") is not None else "",
                          f"{sum(best.values()) / len(best):.3f}" if best else "")
        return table


def _settings_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


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
    console.print(f"Best: {_settings_text(result.best)}. Evaluate it on every test fold with\n"
                  f"  raycells cv --config {result.best_file}")
