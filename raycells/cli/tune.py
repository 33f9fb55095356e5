"""`raycells tune`: a Ray Tune search over sampling policies (or any setting), scored on the inner
validation splits, ending in best.json for `raycells cv --config best.json`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..errors import RaycellsError
from ..settings import build_settings, read_config_file
from ..runs.tune import METRICS, TuneResult, run_tune
from .common import LiveDisplay, console, dataset_path, load_dataset, reported_errors
from .cv import parse_sampling


def tune(
    space: Annotated[Optional[list[str]], typer.Option("--space", help='A setting to search: "sampling.policy=none|oversample|sqrt" (every value is tried) or "lr=loguniform(0.0003,0.003)" (also uniform, randint). Repeat for more settings; a config file may hold a "space" table instead.', show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder, CSV or manifest. Default: the built-in SYNTHETIC demo dataset.", show_default=False)] = None,
    metric: Annotated[str, typer.Option(help=f"What trials are ranked by, on the inner validation splits: {' or '.join(METRICS)}.")] = "macro_f1",
    samples: Annotated[int, typer.Option(help="Draws of the ranges per combination of listed values.")] = 1,
    trial_folds: Annotated[int, typer.Option(help="Folds each trial trains (its score: their mean).")] = 1,
    grace_epochs: Annotated[Optional[int], typer.Option(help="Epochs before ASHA may stop a trial (default: half of --epochs).", show_default=False)] = None,
    folds: Annotated[Optional[int], typer.Option(help="Folds of the plan (default: 5).", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(help="Model of every trial (see raycells cv).", show_default=False)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Input size in pixels.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step over all workers.", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.", show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option(help="class (default) or fine.", show_default=False)] = None,
    extra_data: Annotated[Optional[Path], typer.Option(help="Another dataset whose images join every fold's training part (never test or validation).", show_default=False)] = None,
    extra_map: Annotated[Optional[str], typer.Option(help="How --extra-data labels map onto the classes: pbc-to-aml, or a .json/.csv (from,to) file.", show_default=False)] = None,
    sampling: Annotated[Optional[str], typer.Option(help="The sampling policy where the space does not set it (see raycells cv).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for folds, weights, sampling and augmentation.", show_default=False)] = None,
    preset: Annotated[Optional[str], typer.Option(help="cpu, demo or paper (see raycells cv).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="Settings file; a 'space' table in it is the search space.", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="Training workers per trial.", show_default=False)] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="GPUs per worker.", show_default=False)] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option(help="CPUs per worker.", show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/tune-<time>).", show_default=False)] = None,
) -> None:
    """Search sampling policies (or other settings) with Ray Tune and ASHA; writes best.json."""
    flags = {"data": str(data) if data else None, "folds": folds, "model": model,
             "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "labels": labels, "extra_data": str(extra_data) if extra_data else None,
             "extra_map": extra_map, "seed": seed, "workers": workers,
             "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker,
             "address": address}
    with reported_errors():
        flags["sampling"] = parse_sampling(sampling)
        searched = read_config_file(config).get("space", {}) if config else {}
        if not isinstance(searched, dict):
            raise RaycellsError(f"{config}: 'space' must be a table of settings to search.")
        searched = {**searched, **parse_space_flags(space or [])}
        experiment, placement = build_settings(preset=preset, config_file=config, flags=flags,
                                               ignore=("space",))
        out = out or Path("runs") / f"tune-{dt.datetime.now():%Y%m%d-%H%M%S}"
        path = dataset_path(Path(experiment.data) if experiment.data else None)
        experiment = dataclasses.replace(experiment, data=str(path))
        manifest = load_dataset(path)
        display = _Trials()
        result = display.run(
            lambda: run_tune(out, experiment, placement, searched, manifest=manifest,
                             samples=samples, trial_folds=trial_folds, metric=metric,
                             grace_epochs=grace_epochs, events=display.event),
            Path(out), f"Finished trials are in {Path(out) / 'tune'}; start a new search with "
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
