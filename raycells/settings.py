"""Typed settings for a cross-validation run, merged in one place: defaults, then a preset, then a
config file, then command-line flags. The merged result is written to the run's config.json first.

`Experiment` holds what changes the results (and is compared when a run directory is reused);
`Placement` holds where the run executes (free to change when a run resumes elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .train.augment import AugmentSettings
from .errors import RaycellsError
from .data.sampling import Sampling

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
LABELS = ("class", "fine")


@dataclass(frozen=True)
class Transfer:
    """A run that starts from a trained network (`raycells transfer`): the head is replaced for
    the new classes and trained alone first; then the experiment's `epochs` at its `lr` train
    everything but the batch-norm layers. The source network's weights are `weights`."""

    source: str
    """Where the network comes from (a run directory and fold, or a weights file), for the reader."""
    head_epochs: int = 10
    """Epochs of the first phase: new head only, body frozen."""
    head_lr: float = 0.01
    """Peak learning rate of the first phase."""

    def __post_init__(self) -> None:
        _check(self.head_epochs >= 0, "transfer.head_epochs", self.head_epochs, "0 or more")
        _check(self.head_lr > 0, "transfer.head_lr", self.head_lr, "above 0")


@dataclass(frozen=True)
class Experiment:
    """Everything that decides what a cross-validation run computes."""

    data: str | None = None
    """Dataset folder, CSV or manifest; None means the built-in synthetic demo dataset."""
    folds: int = 5
    """Number of stratified test folds."""
    seed: int = 0
    """Seed for the fold plan, initial weights, sampling and augmentation."""
    model: str = "resnet18"
    """Architecture from the model registry."""
    image_size: int = 64
    """Images are resized to image_size x image_size (the paper: 400)."""
    epochs: int = 18
    """Training epochs per fold (after a transfer run's head epochs); the best epoch on the inner
    validation split is kept."""
    batch_size: int = 64
    """Images per optimisation step, summed over all workers."""
    lr: float = 0.002
    """Peak learning rate."""
    weight_decay: float = 0.05
    """Weight decay of the optimizer."""
    optimizer: str = "adamw"
    """adamw or sgd (momentum 0.9, Nesterov)."""
    schedule: str = "onecycle"
    """Learning-rate schedule: onecycle, cosine or constant."""
    val_fraction: float = 0.1
    """Share of each training part held out as inner validation."""
    labels: str = "class"
    """Train on each image's class ("class") or on its fine label ("fine": PBC's 13 file-name
    prefixes, or a CSV's fine_label column)."""
    extra_data: str | None = None
    """Another dataset whose images join the training part of every fold (never test or
    validation), relabelled by `extra_map`."""
    extra_map: str | None = None
    """How extra images map onto the classes: pbc-to-aml, or a .json/.csv mapping file."""
    drop_small_classes: bool = False
    """Leave out classes with fewer images than folds instead of stopping with an error."""
    sampling: Sampling = field(default_factory=Sampling)
    """Which training images (and how many copies) each epoch sees, or a class-weighted loss."""
    weights: str | None = None
    """Initial weights file (a state dict or raycells checkpoint); None trains from scratch. With
    `transfer`, every weight but the head's."""
    transfer: Transfer | None = None
    """Two-phase training from the network in `weights` (None: one phase, everything trained)."""
    folds_from: str | None = None
    """Take the fold plan from this run directory (same images), so two runs pair fold by fold."""
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    """Augmentation of training batches."""
    tta: bool = True
    """Test-time augmentation: each test image's probabilities are averaged over its 8 flips and
    right-angle rotations (exact views, no interpolation). Validation is never augmented."""

    def __post_init__(self) -> None:
        _check(self.folds >= 2, "folds", self.folds, "at least 2")
        _check(self.image_size >= 16, "image_size", self.image_size, "at least 16 pixels")
        _check(self.epochs >= (0 if self.transfer else 1), "epochs", self.epochs,
               "0 or more after transfer head epochs" if self.transfer else "at least 1")
        _check(self.transfer is None or self.transfer.head_epochs + self.epochs >= 1, "epochs",
               self.epochs, "at least 1 epoch over both transfer phases")
        _check(self.transfer is None or self.weights is not None, "weights", self.weights,
               "the source network's weights file when transfer is set")
        _check(self.batch_size >= 2, "batch_size", self.batch_size, "at least 2")
        _check(self.lr > 0, "lr", self.lr, "above 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "0 or more")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, " or ".join(OPTIMIZERS))
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, ", ".join(SCHEDULES))
        _check(self.labels in LABELS, "labels", self.labels, " or ".join(LABELS))
        _check((self.extra_data is None) == (self.extra_map is None), "extra_map", self.extra_map,
               "a mapping (such as pbc-to-aml) exactly when extra_data is set")
        _check(0 < self.val_fraction < 0.5, "val_fraction", self.val_fraction, "between 0 and 0.5")
        from .train.models import model_names  # torchvision import deferred until settings are built

        _check(self.model in model_names(), "model", self.model, ", ".join(model_names()))


@dataclass(frozen=True)
class Placement:
    """Where and on how many workers the run executes."""

    address: str | None = None
    """Ray cluster address ("auto" for the cluster this machine belongs to); None starts one."""
    workers: int | None = None
    """Training workers per fold; None sizes it from the cluster (one per GPU, else one)."""
    gpus_per_worker: float | None = None
    """GPUs per training worker; None uses one when the cluster has GPUs."""
    cpus_per_worker: float | None = None
    """CPUs per training worker; None leaves one CPU of each fold's share to Ray Data."""

    def __post_init__(self) -> None:
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "at least 1")
        _check(self.gpus_per_worker is None or self.gpus_per_worker >= 0, "gpus_per_worker",
               self.gpus_per_worker, "0 or more")
        _check(self.cpus_per_worker is None or self.cpus_per_worker > 0, "cpus_per_worker",
               self.cpus_per_worker, "above 0")


PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "demo": {"model": "tiny_cnn", "epochs": 10, "lr": 0.005},
    "paper": {"model": "resnext50", "image_size": 400, "epochs": 20, "batch_size": 32,
              "optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4, "schedule": "cosine",
              "tta": False},
    "transfer": {"epochs": 10, "lr": 1e-5},
}
"""Named starting points: `cpu` (the defaults: ResNet-18 on 64x64 images), `demo` (a tiny CNN
for the synthetic demo data: checks the set-up in minutes), `paper` (ResNeXt-50 at 400x400 as
in Matek et al. 2019; for GPUs) and `transfer` (what `raycells transfer` starts from: after the
head's epochs, 10 fine-tuning epochs at 1e-5). Without a preset, runs on the demo data use
`demo`, others `cpu`."""


def build_settings(*, preset: str | None = None, config_file: str | Path | None = None,
                   flags: dict[str, Any] | None = None,
                   ignore: tuple[str, ...] = ()) -> tuple[Experiment, Placement]:
    """Merge defaults, a preset (`preset`, else the file's "preset", else cpu, or demo when no
    dataset is named), `config_file` and `flags` (None values are ignored), in that order. Keys
    may be any Experiment or Placement field; augmentation keys go under "augment", sampling keys
    under "sampling" (or "sampling" names just the policy), transfer keys under "transfer"."""
    values: dict[str, Any] = {}
    file_values = read_config_file(config_file) if config_file else {}
    for key in ignore:  # tables of the file that another part of the command reads
        file_values.pop(key, None)
    file_preset = file_values.pop("preset", None)
    has_data = (flags or {}).get("data") or file_values.get("data")
    preset = preset or file_preset or ("cpu" if has_data else "demo")
    if preset not in PRESETS:
        raise RaycellsError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    for layer in (PRESETS[preset], file_values, {k: v for k, v in (flags or {}).items() if v is not None}):
        for key, value in layer.items():
            if key == "augment" and isinstance(value, dict):
                base = values.get("augment", {})
                base = dataclasses.asdict(AugmentSettings.off()) if base == "off" else base
                values["augment"] = {**base, **value}
            elif key == "sampling" and isinstance(value, dict):
                base = values.get("sampling", {})
                values["sampling"] = {**({"policy": base} if isinstance(base, str) else base), **value}
            elif key == "transfer" and isinstance(value, dict):
                values["transfer"] = {**(values.get("transfer") or {}), **value}
            else:
                values[key] = value
    return settings_from_dict(values, origin=str(config_file) if config_file else "the settings")


def settings_from_dict(values: dict[str, Any], *, origin: str = "config.json") -> tuple[Experiment, Placement]:
    """Build the settings from a flat dict (as written in config.json's "settings")."""
    experiment_keys = {f.name for f in fields(Experiment)}
    placement_keys = {f.name for f in fields(Placement)}
    unknown = set(values) - experiment_keys - placement_keys
    if unknown:
        raise RaycellsError(f"{origin}: unknown settings {', '.join(sorted(unknown))}. Known: "
                            f"{', '.join(sorted(experiment_keys | placement_keys))}.")
    experiment = {k: v for k, v in values.items() if k in experiment_keys}
    augment = experiment.pop("augment", None)
    try:
        if isinstance(augment, str):
            if augment != "off":
                raise ValueError(f'augment must be "off" or a table of settings, not {augment!r}')
            experiment["augment"] = AugmentSettings.off()
        elif augment is not None:
            unknown_aug = set(augment) - {f.name for f in fields(AugmentSettings)}
            if unknown_aug:
                raise ValueError(f"unknown augment settings {', '.join(sorted(unknown_aug))}")
            experiment["augment"] = AugmentSettings(**augment)
        sampling = experiment.pop("sampling", None)
        if sampling is not None:
            sampling = {"policy": sampling} if isinstance(sampling, str) else sampling
            unknown_sampling = set(sampling) - {f.name for f in fields(Sampling)}
            if unknown_sampling:
                raise ValueError(f"unknown sampling settings {', '.join(sorted(unknown_sampling))}")
            experiment["sampling"] = Sampling(**sampling)
        transfer = experiment.pop("transfer", None)
        if transfer is not None:
            unknown_transfer = set(transfer) - {f.name for f in fields(Transfer)}
            if unknown_transfer:
                raise ValueError(f"unknown transfer settings {', '.join(sorted(unknown_transfer))}")
            experiment["transfer"] = Transfer(**transfer)
        return (Experiment(**experiment),
                Placement(**{k: v for k, v in values.items() if k in placement_keys}))
    except (TypeError, ValueError) as error:
        raise RaycellsError(f"{origin}: {error}") from error


def as_dict(settings: Experiment | Placement) -> dict[str, Any]:
    """Plain JSON-ready dict of a settings object (augmentation, sampling and transfer nested)."""
    return dataclasses.asdict(settings)


def differences(old: Experiment, new: Experiment) -> list[str]:
    """Human-readable list of the fields that differ between two experiments."""
    a, b = _flatten(as_dict(old)), _flatten(as_dict(new))
    return [f"{key}: {a.get(key)!r} -> {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read settings from a .json, .toml or .yaml file. A file with a top-level "settings" table
    (a run's config.json, or tune's best.json) is read from there."""
    path = Path(path)
    if not path.is_file():
        raise RaycellsError(f"{path}: config file not found.")
    if path.suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise RaycellsError(f"{path}: config files are .json, .toml or .yaml.")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as error:  # each format has its own error types
        raise RaycellsError(f"{path}: cannot parse the config file ({error}).") from error
    if not isinstance(data, dict):
        raise RaycellsError(f"{path}: expected a table of settings at the top level.")
    if isinstance(data.get("settings"), dict):
        data = {**data["settings"].get("experiment", data["settings"]),
                **data["settings"].get("placement", {})}
    return {key.replace("-", "_"): value for key, value in data.items()}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r} is not valid: expected {expected}")
