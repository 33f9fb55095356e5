"""Every command-line option, declared once.

A setting's option takes its help from the settings field's docstring (`raycells.settings`) and
shows its default from the presets, so neither is repeated here. A command lists the settings it
takes with `@takes_settings(...)`; their values reach it as one dict of flags for
`build_settings` (None where the option was not given). Options that are not settings (where the
run goes, which preset and config file) are the aliases at the end.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import RaycellsError
from ..settings import (
    PRESETS,
    SEARCH_METRICS,
    Experiment,
    Placement,
    Transfer,
    field_docs,
    read_config_file,
)
from .common import reported_errors

if TYPE_CHECKING:
    from ..runs.rundir import RunDir
    from ..runs.tune import SearchPlan

DATA, TRAINING, TRANSFER, CLUSTER, TRACKING, MORE = (
    "Data", "Training", "Transfer", "Cluster", "Tracking", "Rarely needed")
PANELS = (DATA, TRAINING, TRANSFER, CLUSTER, TRACKING, MORE)
"""The help panels the settings' options appear in, in --help's order."""


def parse_augment(text: str) -> Any:
    """--augment: "off", "on", or key=value pairs such as "rotate=1,noise=0.3"."""
    if text == "on":
        return None
    if text == "off":
        return "off"
    values = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise RaycellsError(f'--augment {text!r}: expected "off" or key=value pairs such as '
                                '"rotate=1,noise=0.3".')
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise RaycellsError(f"--augment: {key.strip()} needs a number, not {value!r}.") from None
    return values


def parse_sampling(text: str) -> dict[str, Any]:
    """--sampling: a policy, then target=, cap= and same_length=, such as
    "oversample,target=10000,cap=20" or "sqrt,same_length=true"."""
    policy, *parameters = [part.strip() for part in text.split(",")]
    values: dict[str, Any] = {"policy": policy}
    for part in parameters:
        key, sep, value = part.partition("=")
        if not sep or key not in ("target", "cap", "same_length"):
            raise RaycellsError(f'--sampling {text!r}: expected a policy, then target=, cap= or '
                                'same_length=, such as "oversample,target=10000,cap=20".')
        if key == "same_length":
            if value.lower() not in ("true", "false", "1", "0"):
                raise RaycellsError(f"--sampling: same_length is true or false, not {value!r}.")
            values[key] = value.lower() in ("true", "1")
            continue
        try:
            values[key] = int(value) if key == "target" else float(value)
        except ValueError:
            raise RaycellsError(f"--sampling: {key} needs a number, not {value!r}.") from None
    return values


@dataclass(frozen=True)
class Setting:
    """The option of one setting."""

    owner: type
    """The settings class holding the field: Experiment, Placement or Transfer."""
    type: type
    """What the option's text is read as."""
    panel: str
    decls: tuple[str, ...] = ()
    """Typer's option names, where the default (--name-with-dashes) is not enough."""
    parse: Callable[[Any], Any] | None = None
    """From the option's value to the setting's (--augment, --sampling)."""
    shown: str | None = None
    """The default as shown, for a setting whose default is a table of settings."""


SETTINGS: dict[str, Setting] = {
    "data": Setting(Experiment, Path, DATA),
    "labels": Setting(Experiment, str, DATA),
    "folds": Setting(Experiment, int, DATA),
    "folds_from": Setting(Experiment, Path, DATA),
    "val_fraction": Setting(Experiment, float, MORE),
    "extra_data": Setting(Experiment, Path, DATA),
    "extra_map": Setting(Experiment, str, DATA),
    "allow_outside": Setting(Experiment, bool, MORE, ("--allow-outside",)),
    "drop_small_classes": Setting(Experiment, bool, MORE, ("--drop-small-classes",)),
    "drop_conflicts": Setting(Experiment, bool, MORE, ("--drop-conflicts",)),
    "group_near_duplicates": Setting(Experiment, bool, MORE, ("--group-near-duplicates",)),
    "sampling": Setting(Experiment, str, DATA, parse=parse_sampling, shown="none"),
    "model": Setting(Experiment, str, TRAINING),
    "weights": Setting(Experiment, Path, TRAINING),
    "image_size": Setting(Experiment, int, TRAINING),
    "epochs": Setting(Experiment, int, TRAINING),
    "batch_size": Setting(Experiment, int, TRAINING),
    "batch_scaling": Setting(Experiment, str, CLUSTER),
    "lr": Setting(Experiment, float, TRAINING),
    "weight_decay": Setting(Experiment, float, MORE),
    "optimizer": Setting(Experiment, str, TRAINING),
    "schedule": Setting(Experiment, str, TRAINING),
    "augment": Setting(Experiment, str, TRAINING, parse=parse_augment, shown="on"),
    "tta": Setting(Experiment, bool, TRAINING, ("--tta/--no-tta",)),
    "keep_epoch": Setting(Experiment, str, TRAINING),
    "deterministic": Setting(Experiment, bool, MORE, ("--deterministic",)),
    "precision": Setting(Experiment, str, MORE),
    "images_on_device": Setting(Experiment, bool, MORE, ("--images-on-device",)),
    "sync_batchnorm": Setting(Experiment, bool, CLUSTER, ("--sync-batchnorm/--no-sync-batchnorm",)),
    "compile": Setting(Experiment, bool, MORE, ("--compile",)),
    "seed": Setting(Experiment, int, TRAINING),
    "head_epochs": Setting(Transfer, int, TRANSFER),
    "head_lr": Setting(Transfer, float, TRANSFER),
    "freeze_batchnorm": Setting(Transfer, bool, TRANSFER, ("--freeze-batchnorm/--train-batchnorm",)),
    "workers": Setting(Placement, int, CLUSTER),
    "gpus_per_worker": Setting(Placement, float, MORE),
    "cpus_per_worker": Setting(Placement, float, MORE),
    "address": Setting(Placement, str, CLUSTER),
    "tracking": Setting(Placement, bool, TRACKING, ("--tracking/--no-tracking",)),
    "mlflow_uri": Setting(Placement, str, TRACKING),
}
"""Option name (the settings field's) -> its declaration, in the order --help lists them."""

TRANSFER_PHASES = ("head_epochs", "head_lr", "freeze_batchnorm")
TRACKED = ("tracking", "mlflow_uri")
TRAINING_SETTINGS = tuple(name for name in SETTINGS if name not in TRANSFER_PHASES + TRACKED)
"""What a run that trains from scratch (or from --weights) takes: cv and tune; cv and transfer
add TRACKED (their runs are recorded in MLflow)."""


def takes_settings(*names: str):
    """Decorate a command that takes the options of the settings `names`: they are added to its
    signature (for Typer), and their values reach its parameter `flags` as build_settings takes
    them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [parameter for parameter in inspect.signature(command, eval_str=True).parameters.values()
               if parameter.name != "flags"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=_annotation(name))
                 for name in sorted(names, key=lambda name: PANELS.index(SETTINGS[name].panel))]
        if "data" in names:  # the dataset, as `data inspect` and `predict` take it too
            added.insert(0, inspect.Parameter("dataset", inspect.Parameter.KEYWORD_ONLY,
                                              default=None, annotation=Dataset))

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            given = {name: values.pop(name) for name in names}
            with reported_errors():
                dataset = values.pop("dataset", None)
                if dataset is not None:
                    if given["data"] is not None and Path(given["data"]) != dataset:
                        raise RaycellsError(f"two datasets: {dataset} and --data {given['data']}. "
                                            "Give the dataset once, either way.")
                    given["data"] = dataset
                flags = {name: _flag(name, value) for name, value in given.items()}
            return command(flags=flags, **values)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        run.__signature__ = inspect.Signature(parameters)
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


Dataset = Annotated[Path | None, typer.Argument(
    help="Dataset folder, CSV or manifest (the same as --data; none: the built-in SYNTHETIC demo "
         "dataset).", show_default=False)]


def _flag(name: str, value: Any) -> Any:
    setting = SETTINGS[name]
    if value is None or (value is False and setting.type is bool and "/" not in setting.decls[0]):
        return None  # a switch left off: the config file or preset decides
    if setting.parse:
        return setting.parse(value)
    return str(value) if isinstance(value, Path) else value


def _annotation(name: str) -> Any:
    setting = SETTINGS[name]
    docs = field_docs(setting.owner)
    if name not in docs:
        raise KeyError(f"{setting.owner.__name__}.{name} has no docstring to serve as its help")
    default = _default_text(name, setting)
    return Annotated[setting.type | None, typer.Option(
        *setting.decls, help=docs[name], show_default=default or False,
        rich_help_panel=setting.panel, metavar="" if setting.type is bool else None)]


def _default_text(name: str, setting: Setting) -> str | None:
    """The default as --help shows it: the field's default and where a preset differs."""
    field = next(f for f in fields(setting.owner) if f.name == name)
    default = setting.shown if setting.shown is not None else (
        None if field.default is MISSING else field.default)
    presets: dict[str, list[str]] = {}  # the value as shown -> the presets that set it
    for preset, values in PRESETS.items():
        if name in values:
            presets.setdefault(_shown(values[name]), []).append(preset)
    if default is None and not presets:
        return None
    return "; ".join([_shown(default)] + [f"{', '.join(names)} preset: {value}"
                                          for value, names in presets.items()])


def _shown(value: Any) -> str:
    """A setting's value as it is written on the command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):  # --sampling, --augment: policy first, then key=value pairs
        policy = [str(value["policy"])] if "policy" in value else []
        return ", ".join(policy + [f"{key}={_shown(v)}" for key, v in value.items() if key != "policy"]) or "on"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


Preset = Annotated[str | None, typer.Option(
    help="Starting point of the settings: cpu (ResNet-18 at 64x64; the default with --data), "
         "demo (tiny CNN; the default without --data), paper (Matek et al. 2019's protocol: "
         "ResNeXt-50 at 400x400, flips and rotations, 10,000 images per class per epoch, the "
         "last epoch; for GPUs; docs/paper-protocol.md), paper-plus (the paper's with noise, "
         "brightness and contrast, the best epoch and test-time augmentation) or transfer "
         "(raycells transfer's).", show_default=False)]
Config = Annotated[Path | None, typer.Option(
    help="Settings file (.json, .toml, .yaml) with any of the settings' options, such as a run's "
         "config.json or tune's best.json.", show_default=False)]
Out = Annotated[Path | None, typer.Option(
    help="Run directory (default: runs/<command>-<time>).", show_default=False)]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue the run in --out: finished folds are kept, the others go on "
                     "from their last checkpoint.")]


# A search (`raycells tune`, `raycells cv/transfer --search`).
Space = Annotated[list[str] | None, typer.Option(
    "--space", help='A setting to search: "sampling.policy=none|oversample|sqrt" (every value is '
                    'tried) or "lr=loguniform(0.0003,0.003)" (also uniform, randint). Repeat for '
                    'more settings; a config file may hold a "space" table instead.',
    show_default=False)]
Metric = Annotated[str, typer.Option(
    help=f"What trials are ranked by, on the inner validation splits: {' or '.join(SEARCH_METRICS)}.")]
Samples = Annotated[int, typer.Option(help="Draws of the ranges per combination of listed values.")]
GraceEpochs = Annotated[int | None, typer.Option(
    help="Epochs before ASHA may stop a trial (default: half of --epochs; in a transfer, the "
         "head epochs and half of --epochs).", show_default=False)]
Search = Annotated[list[str] | None, typer.Option(
    "--search", help='Nested selection: search this setting inside every fold\'s training part '
                     '(its trials scored on the fold\'s inner validation split), train the '
                     'winner, test it once on the fold. Same syntax as tune\'s --space, such as '
                     '"sampling.policy=none|oversample"; repeat for more settings; a config '
                     'file may hold a "space" table instead.', show_default=False)]
MaxPixels = Annotated[int, typer.Option(
    min=1, help="Largest image (width x height) to read; larger ones are listed as unreadable, "
                "a guard against decompression bombs. Raise it for legitimately large scans.")]
Images = Annotated[list[Path], typer.Argument(
    help="Images: folders (searched recursively, any layout), CSVs with a path column, "
         "manifests (.parquet) or image files.", show_default=False)]
From = Annotated[Path, typer.Option(
    "--from", help="Run directory whose trained networks are used (raycells cv or transfer).")]
Fold = Annotated[int | None, typer.Option(
    help="Use this fold's network only (default: every finished fold's, their probabilities "
         "averaged).", show_default=False)]
SourceFrom = Annotated[Path | None, typer.Option(
    "--from", help="The trained network to transfer from: a run directory (the network of its "
                   "best fold, or of --fold) or a weights file (with --model).", show_default=False)]
SourceFold = Annotated[int | None, typer.Option(
    help="The source run's fold to take the network from (default: the best).", show_default=False)]
Threshold = Annotated[float, typer.Option(
    min=0.0, max=1.0, help="Probability threshold for the blast and atypical flags, sensitivity "
                           "and specificity.")]
AllowOverlap = Annotated[bool, typer.Option(
    "--allow-overlap", help="Go on although the images scored were used to train or to choose "
                            "the network (the scores are then not test results).")]


def search_space(config: Path | None, specs: list[str] | None) -> dict[str, Any]:
    """The search space of a command: the config file's "space" table, then the flags."""
    searched = read_config_file(config).get("space", {}) if config else {}
    if not isinstance(searched, dict):
        raise RaycellsError(f"{config}: 'space' must be a table of settings to search.")
    return {**searched, **parse_space(specs or [])}


def nested_search(run: RunDir, config: Path | None, search: list[str] | None, *, samples: int,
                  metric: str, grace_epochs: int | None, resume: bool) -> SearchPlan | None:
    """The nested selection of `raycells cv/transfer --search`: a resumed run's own, as it
    began (config.json's "search"), else the config file's "space" table and the --search flags."""
    from ..runs.tune import SearchPlan

    if resume:
        if search:
            raise RaycellsError("--resume continues the run's own search: leave out --search.")
        return SearchPlan.of_run(run)
    space = search_space(config, search)
    return SearchPlan(space, samples, metric, grace_epochs) if space else None


def parse_space(specs: list[str]) -> dict[str, Any]:
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


