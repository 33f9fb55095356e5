"""Typed settings for a run, declared once and merged in one place: defaults, then a preset, then a
config file, then command-line flags. The merged result is written to the run's config.json first.

`Experiment` holds what changes the results (and is compared when a run directory is reused);
`Placement` holds where the run executes (free to change when a run resumes elsewhere). Each
field's docstring is also its command-line help (`raycells.cli.options`), so it is written to be
read there. This module imports neither torch nor Kornia: the settings travel to every worker and
are checked before anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import RaycellsError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
LABELS = ("class", "fine")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
KEEP_EPOCHS = ("best", "last")
BATCH_SCALINGS = ("global", "per-worker")
POLICIES = ("none", "oversample", "sqrt", "class-weighted")
SEARCH_METRICS = ("macro_f1", "balanced_accuracy")
"""What a search (`raycells tune`, `--search`) ranks its trials by, on the inner validation splits."""
EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")
"""What `raycells export` writes."""
MODELS = ("resnext50", "efficientnet_b0", "densenet121", "convnext_tiny", "resnet18", "tiny_cnn")
"""The architectures of the model registry (`raycells.train.models`), named here so that settings
can be checked without importing torch."""
TIMM = "timm:"
"""A model named timm:<name> is timm's <name> (when timm is installed), built without weights."""


@dataclass(frozen=True)
class AugmentSettings:
    """What the training batches go through (`raycells.train.augment`); `AugmentSettings.off()`
    disables everything. Validation and test batches are never augmented."""

    flip: float = 0.5
    """Probability of a horizontal flip, and separately of a vertical flip."""
    rotate: float = 1.0
    """Probability of a rotation by an angle drawn uniformly from 0-359 degrees."""
    noise: float = 0.3
    """Probability of adding Gaussian noise."""
    noise_std: float = 0.03
    """Standard deviation of the noise, on the 0-1 intensity scale."""
    brightness: float = 0.5
    """Probability of a brightness shift."""
    brightness_range: float = 0.1
    """Largest brightness shift, on the 0-1 intensity scale."""
    contrast: float = 0.5
    """Probability of a contrast change."""
    contrast_range: float = 0.1
    """Largest relative contrast change (0.1: factor 0.9-1.1)."""

    def __post_init__(self) -> None:
        _real(self, *(f.name for f in fields(self)))
        for name in ("flip", "rotate", "noise", "brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} is a probability: got {value}, expected 0 to 1")
        for name in ("noise_std", "brightness_range", "contrast_range"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"augment.{name} must be at least 0 and below 1")

    @classmethod
    def off(cls) -> AugmentSettings:
        return cls(flip=0.0, rotate=0.0, noise=0.0, brightness=0.0, contrast=0.0)

    @property
    def enabled(self) -> bool:
        return any((self.flip, self.rotate, self.noise, self.brightness, self.contrast))


@dataclass(frozen=True)
class Sampling:
    """A class-balancing policy and its parameters; `raycells.data.sampling` turns it into copies
    per image and loss weights."""

    policy: str = "none"
    """none, oversample, sqrt or class-weighted."""
    target: int | None = None
    """oversample: images per class per epoch; None means the largest class's size."""
    cap: float | None = None
    """oversample: most copies of one image per epoch; None means no cap."""
    same_length: bool = False
    """Scale every class's copies so that an epoch holds as many images as the training part
    (large classes then subsampled each epoch): policies compared at equal compute."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"sampling = {self.policy!r} is not valid: expected {', '.join(POLICIES)}")
        _whole(self, "target")
        _real(self, "cap")
        _flag(self, "same_length")
        if self.target is not None and self.target < 1:
            raise ValueError(f"sampling target = {self.target!r} is not valid: expected at least 1")
        if self.cap is not None and self.cap < 1:
            raise ValueError(f"sampling cap = {self.cap!r} is not valid: expected at least 1")

    @property
    def resamples(self) -> bool:
        """Whether epochs differ from one pass over the training images."""
        return self.policy in ("oversample", "sqrt")  # same_length changes no other policy


@dataclass(frozen=True)
class Transfer:
    """A run that starts from a trained network (`raycells transfer`): the head is replaced for
    the new classes and trained alone first; then the experiment's `epochs` at its `lr` train
    everything but the batch-norm layers (or everything, without `freeze_batchnorm`). The source
    network's weights are `weights`."""

    source: str
    """Where the network comes from (a run directory and fold, or a weights file), for the reader."""
    head_epochs: int = 10
    """Epochs of the first transfer phase: the new head alone, the body frozen."""
    head_lr: float = 0.01
    """Peak learning rate of the first transfer phase."""
    freeze_batchnorm: bool = True
    """Keep the batch-norm layers as the source network left them while fine-tuning (the
    original study's way); off: they train and take the new images' statistics."""

    def __post_init__(self) -> None:
        _whole(self, "head_epochs")
        _real(self, "head_lr")
        _check(self.head_epochs >= 0, "transfer.head_epochs", self.head_epochs, "0 or more")
        _check(self.head_lr > 0, "transfer.head_lr", self.head_lr, "above 0")


@dataclass(frozen=True)
class Experiment:
    """Everything that decides what a cross-validation run computes."""

    data: str | None = None
    """Dataset folder, CSV or manifest (none: the built-in SYNTHETIC demo dataset)."""
    folds: int = 5
    """Number of stratified test folds."""
    seed: int = 0
    """Seed for the fold plan, initial weights, sampling draws, data order and augmentation: the
    same seed repeats a run."""
    model: str = "resnet18"
    """Architecture: resnext50 (Matek et al.'s), efficientnet_b0, densenet121, convnext_tiny,
    resnet18, tiny_cnn, or timm:<name> for any of timm's (pip install timm). A transfer run takes
    the source network's (name it for a weights file)."""
    image_size: int = 64
    """Input size in pixels: images are resized to a square of this size (a transfer run: the
    source network's unless given)."""
    epochs: int = 18
    """Training epochs per fold (a transfer run: fine-tuning epochs after the head's; 0 trains the
    head only); the best epoch on the inner validation split is kept."""
    batch_size: int = 64
    """Images per optimisation step: over all of a fold's workers, or each worker's with
    batch_scaling per-worker."""
    batch_scaling: str = "global"
    """global: batch_size and lr are the step's whatever the number of workers (a fold trains the
    same on 1 or 8 GPUs; with sync_batchnorm exactly). per-worker: each worker takes batch_size
    images and the peak learning rate grows with the workers (lr x workers, the linear scaling
    rule): faster on many GPUs, but a different experiment at each width, so folds then train on
    equal numbers of workers."""
    lr: float = 0.002
    """Peak learning rate (a transfer run: of the fine-tuning phase), at batch_size."""
    weight_decay: float = 0.05
    """Weight decay of the optimizer."""
    optimizer: str = "adamw"
    """adamw or sgd (momentum 0.9, Nesterov)."""
    schedule: str = "onecycle"
    """Learning-rate schedule: onecycle, cosine or constant (it starts again in each phase)."""
    val_fraction: float = 0.1
    """Share of each training part held out as inner validation."""
    labels: str = "class"
    """Train on each image's class ("class") or on its fine label ("fine": PBC's 13 file-name
    prefixes, or a CSV's fine_label column)."""
    extra_data: str | None = None
    """Another dataset whose images join the training part of every fold (never test or
    validation), relabelled by the extra map."""
    extra_map: str | None = None
    """How the extra data's labels map onto the classes: pbc-to-aml, or a .json/.csv (from,to)
    file."""
    allow_outside: bool = False
    """Let a CSV dataset list images outside its own folder (absolute paths, or .. leading
    out), which are refused otherwise: a CSV from elsewhere cannot make a run read, hash and
    cache arbitrary files."""
    drop_small_classes: bool = False
    """Leave out classes with fewer images than folds instead of stopping with an error."""
    drop_conflicts: bool = False
    """Leave out byte-identical images filed under different labels (label conflicts), which are
    otherwise kept, each set in one fold, with a warning."""
    group_near_duplicates: bool = False
    """Keep near-duplicate pictures (difference hashes a few bits apart) in the same fold, as
    byte-identical copies always are."""
    sampling: Sampling = field(default_factory=Sampling)
    """Per-epoch class balancing of the training part: none, oversample, sqrt or class-weighted;
    oversample takes a target per class and a cap on copies per image, as in
    "oversample,target=10000,cap=20" (target default: the largest class); same_length=true keeps
    every epoch as long as the training part, to compare policies at equal compute."""
    weights: str | None = None
    """Initial weights file of the same architecture: a state dict (.pt, .pth, .bin, torchvision's
    or timm's), a .safetensors file or a raycells checkpoint (none: from scratch; a relative path
    is taken from the current folder). A head for other classes (ImageNet's 1,000) is replaced
    by a new one; a transfer run always replaces it."""
    transfer: Transfer | None = None
    """Two-phase training from the network in `weights` (None: one phase, everything trained)."""
    folds_from: str | None = None
    """Take the fold plan of this run directory (same images), so that `raycells report` pairs the
    two runs fold by fold."""
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    """Augmentation of training batches: "off", or settings such as "rotate=1, flip=0.5,
    noise=0.3, noise_std=0.03, brightness=0.5, contrast=0.5"."""
    tta: bool = True
    """Test-time augmentation: each test image's probabilities are averaged over its 8 flips and
    right-angle rotations (exact views, no interpolation). Validation is never augmented."""
    deterministic: bool = False
    """Deterministic GPU kernels: cuDNN's deterministic convolution algorithms, no benchmark
    search, torch's deterministic algorithms (ops without one warn in ray.log). Slower; CPU runs
    repeat exactly without it."""
    precision: str = "auto"
    """Arithmetic of training on a GPU: auto (bf16 where the GPU has it, else fp16 with loss
    scaling), bf16, fp16 or fp32. CPUs train in fp32 whatever is set. The precision used is
    recorded per epoch in history.csv."""
    images_on_device: bool = False
    """Hold the fold's training images on each training worker's device (GPU memory; RAM on a
    CPU), read once from the cache, and cut every epoch's sampled, shuffled batches there: no data
    feed while training. About 480 kB per image at 400x400; a part that would take more than half
    of a GPU's free memory streams as usual (history.csv's feed column says which)."""
    sync_batchnorm: bool = False
    """Batch-norm statistics over the whole step's batch on all of a fold's GPU workers
    (SyncBatchNorm), not over each worker's share: with global batch scaling a fold then trains as
    on one GPU. Only for GPUs (CPU workers keep their own statistics)."""
    compile: bool = False
    """Compile the network with torch.compile before training (minutes of compiling at the start
    of each fold for faster steps on a GPU; see benchmarks/RESULTS.md)."""
    keep_epoch: str = "best"
    """Which epoch's network a fold keeps and tests: best (highest macro F1 on the inner
    validation split) or last (no selection, as in Matek et al. 2019)."""

    def __post_init__(self) -> None:
        _whole(self, "folds", "seed", "image_size", "epochs", "batch_size")
        _real(self, "lr", "weight_decay", "val_fraction")
        _flag(self, "allow_outside", "drop_small_classes", "drop_conflicts", "group_near_duplicates", "tta",
              "deterministic", "compile")
        _check(self.precision in PRECISIONS, "precision", self.precision, ", ".join(PRECISIONS))
        _check(2 <= self.folds <= 100, "folds", self.folds, "2 to 100")
        _check(self.seed >= 0, "seed", self.seed, "0 or more")
        _check(16 <= self.image_size <= 4096, "image_size", self.image_size, "16 to 4096 pixels")
        _check(self.epochs >= (0 if self.transfer else 1), "epochs", self.epochs,
               "0 or more after transfer head epochs" if self.transfer else "at least 1")
        _check(self.transfer is None or self.transfer.head_epochs + self.epochs >= 1, "epochs",
               self.epochs, "at least 1 epoch over both transfer phases")
        _check(self.transfer is None or self.weights is not None, "weights", self.weights,
               "the source network's weights file when transfer is set")
        _check(2 <= self.batch_size <= 65536, "batch_size", self.batch_size, "2 to 65536")
        _check(self.lr > 0, "lr", self.lr, "above 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "0 or more")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, " or ".join(OPTIMIZERS))
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, ", ".join(SCHEDULES))
        _check(self.labels in LABELS, "labels", self.labels, " or ".join(LABELS))
        _check(self.batch_scaling in BATCH_SCALINGS, "batch_scaling", self.batch_scaling,
               " or ".join(BATCH_SCALINGS))
        _check(self.keep_epoch in KEEP_EPOCHS, "keep_epoch", self.keep_epoch, " or ".join(KEEP_EPOCHS))
        _check((self.extra_data is None) == (self.extra_map is None), "extra_map", self.extra_map,
               "a mapping (such as pbc-to-aml) exactly when extra_data is set")
        _check(0 < self.val_fraction < 0.5, "val_fraction", self.val_fraction, "between 0 and 0.5")
        _check(self.model in MODELS or (self.model.startswith(TIMM) and len(self.model) > len(TIMM)),
               "model", self.model, ", ".join(sorted(MODELS)) + " or timm:<name>")


@dataclass(frozen=True)
class Placement:
    """Where and on how many workers the run executes."""

    address: str | None = None
    """Ray cluster to join ("auto" on a cluster node; none: start one on this machine)."""
    workers: int | None = None
    """Training workers per fold (none: sized from the cluster, one per GPU, else one)."""
    gpus_per_worker: float | None = None
    """GPUs per training worker (none: one when the cluster has GPUs)."""
    cpus_per_worker: float | None = None
    """CPUs per training worker (none: each fold's share less one CPU left to Ray Data)."""
    tracking: bool = True
    """Record the run in MLflow: settings, every epoch's metrics, each fold's test scores."""
    mlflow_uri: str | None = None
    """MLflow tracking server or store for the record, such as http://mlflow.lab:5000 (none: a
    local store shared by the runs in the run directory's folder, such as runs/mlflow.db)."""

    def __post_init__(self) -> None:
        _whole(self, "workers")
        _real(self, "gpus_per_worker", "cpus_per_worker")
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "at least 1")
        _check(self.gpus_per_worker is None or self.gpus_per_worker >= 0, "gpus_per_worker",
               self.gpus_per_worker, "0 or more")
        _check(self.cpus_per_worker is None or self.cpus_per_worker > 0, "cpus_per_worker",
               self.cpus_per_worker, "above 0")
        if self.mlflow_uri and _credentials(self.mlflow_uri):
            raise ValueError(
                f"mlflow_uri = {_credentials(self.mlflow_uri)} holds a password or token, which "
                "would be stored in config.json and printed: give the server without it and set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN), "
                "which MLflow reads")


def _credentials(uri: str) -> str | None:
    """`uri` with its password hidden, if it has one (user:password@host); else None."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return None
    return parts._replace(netloc=f"{parts.username}:***@{parts.hostname}"
                                 + (f":{parts.port}" if parts.port else "")).geturl()


PAPER = {"model": "resnext50", "image_size": 400, "folds": 5, "epochs": 20,
         "augment": {"flip": 0.5, "rotate": 1.0, "noise": 0.0, "brightness": 0.0, "contrast": 0.0},
         "sampling": {"policy": "oversample", "target": 10000}, "keep_epoch": "last", "tta": False,
         "batch_size": 32, "optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4, "schedule": "cosine",
         "sync_batchnorm": True}
"""Matek et al. 2019's protocol as far as it is published (docs/paper-protocol.md has the source
of every value and what could not be confirmed): ResNeXt-50 32x4d from scratch at 400x400, flips
and 0-359 degree rotations only, every class oversampled to about 10,000 training images per epoch,
5 folds, no epoch selection, no test-time augmentation. Not published, our choice: 20 epochs,
batch 32, SGD at 0.01 with a cosine schedule, weight decay 1e-4, and batch-norm statistics over
the whole batch when a fold trains on several GPUs (as on the one GPU of the paper)."""

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    # Oversampled as the paper did for its rare classes: without, the 12-image classes of the
    # demo data were never predicted (sensitivity 0) in 10 epochs.
    "demo": {"model": "tiny_cnn", "epochs": 10, "lr": 0.005,
             "sampling": {"policy": "oversample", "target": 150}},
    "paper": PAPER,
    "paper-plus": {**PAPER, "augment": {}, "keep_epoch": "best", "tta": True},
    "transfer": {"epochs": 10, "lr": 1e-5},
}
"""Named starting points: `cpu` (the defaults: ResNet-18 on 64x64 images), `demo` (a tiny CNN
for the synthetic demo data, rare classes oversampled to 150 images an epoch: checks the set-up
in minutes), `paper` (Matek et al. 2019's
protocol, see PAPER; for GPUs), `paper-plus` (the paper's with our additions: noise, brightness
and contrast augmentation, the best epoch on the inner validation split, test-time
augmentation) and `transfer` (what `raycells transfer` starts from: after the head's epochs, 10
fine-tuning epochs at 1e-5). Without a preset, runs on the demo data use `demo`, others `cpu`."""


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
    preset = resolve_preset(preset, file_values, flags)
    for layer in (PRESETS[preset], file_values, {k: v for k, v in (flags or {}).items() if v is not None}):
        for key, value in layer.items():
            if key == "augment" and isinstance(value, dict):
                base = values.get("augment", {})
                base = dataclasses.asdict(AugmentSettings.off()) if base == "off" else base
                values["augment"] = {**base, **value}
            elif key == "sampling" and isinstance(value, dict):
                base = values.get("sampling", {})
                base = {"policy": base} if isinstance(base, str) else base
                if value.get("policy", base.get("policy")) != base.get("policy"):
                    base = {}  # another policy: the earlier one's parameters do not carry over
                values["sampling"] = {**base, **value}
            elif key == "transfer" and isinstance(value, dict):
                values["transfer"] = {**(values.get("transfer") or {}), **value}
            else:
                values[key] = value
    if values.get("weights"):  # read by the training workers, whose working folder is Ray's
        values["weights"] = str(Path(values["weights"]).expanduser().absolute())
    return settings_from_dict(values, origin=str(config_file) if config_file else "the settings")


def resolve_preset(preset: str | None, file_values: dict[str, Any],
                   flags: dict[str, Any] | None) -> str:
    """The preset a command's settings start from: `preset` (--preset), else the config file's
    "preset" (taken out of `file_values`), else cpu, or demo when no dataset is named."""
    file_preset = file_values.pop("preset", None)
    has_data = (flags or {}).get("data") or file_values.get("data")
    preset = preset or file_preset or ("cpu" if has_data else "demo")
    if preset not in PRESETS:
        raise RaycellsError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return preset


def settings_from_dict(values: dict[str, Any], *, origin: str = "config.json") -> tuple[Experiment, Placement]:
    """Build the settings from a flat dict (as written in config.json's "settings")."""
    experiment_keys = {f.name for f in fields(Experiment)}
    placement_keys = {f.name for f in fields(Placement)}
    unknown = set(values) - experiment_keys - placement_keys
    if unknown:
        raise RaycellsError(f"{origin}: unknown settings {', '.join(sorted(unknown))}. Known: "
                            f"{', '.join(sorted(experiment_keys | placement_keys))}.")
    experiment = {k: v for k, v in values.items() if k in experiment_keys}
    try:
        augment = experiment.pop("augment", None)
        if isinstance(augment, str):
            if augment != "off":
                raise ValueError(f'augment must be "off" or a table of settings, not {augment!r}')
            experiment["augment"] = AugmentSettings.off()
        elif augment is not None:
            experiment["augment"] = _table(AugmentSettings, augment, "augment")
        sampling = experiment.pop("sampling", None)
        if sampling is not None:
            sampling = {"policy": sampling} if isinstance(sampling, str) else sampling
            experiment["sampling"] = _table(Sampling, sampling, "sampling")
        transfer = experiment.pop("transfer", None)
        if transfer is not None:
            experiment["transfer"] = _table(Transfer, transfer, "transfer")
        return (Experiment(**experiment),
                Placement(**{k: v for k, v in values.items() if k in placement_keys}))
    except (TypeError, ValueError) as error:
        raise RaycellsError(f"{origin}: {error}") from error


FINE_TUNING = {"transfer.lr": "lr", "transfer.epochs": "epochs"}
"""In a transfer, the fine-tuning phase trains for the experiment's `epochs` at its `lr`; these
names say so in an override (`raycells tune --from RUN --space "transfer.lr=..."`)."""


def with_overrides(base: Experiment, overrides: dict[str, Any], *,
                   origin: str = "search space") -> Experiment:
    """`base` with the settings named in `overrides` replaced; dotted names reach nested settings
    (`sampling.policy`, `augment.noise`, `transfer.head_lr`; `transfer.lr` and `transfer.epochs`
    are the transfer's fine-tuning phase: `lr` and `epochs`)."""
    values = as_dict(base)
    for key, value in overrides.items():
        if key in FINE_TUNING:
            if base.transfer is None:
                raise RaycellsError(f"{origin} {key}: only a transfer has a fine-tuning phase "
                                    f"(add --from); this run's rate and epochs are "
                                    f"`{FINE_TUNING[key]}`.")
            key = FINE_TUNING[key]
        *path, last = key.split(".")
        target = values
        for part in path:
            if not isinstance(target.get(part), dict):
                raise RaycellsError(f"{origin} {key}: {part} has no settings inside it.")
            target = target[part]
        if last not in target:
            raise RaycellsError(f"{origin} {key}: no such setting. Known: "
                                f"{', '.join(sorted(target))}.")
        target[last] = value
    return settings_from_dict(values, origin=f"{origin} {', '.join(overrides)}")[0]


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of the settings class `cls`, as one line of text (the
    command-line help of the field's option)."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for field_node, doc in itertools.pairwise(body):
        if (isinstance(field_node, ast.AnnAssign) and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
            docs[field_node.target.id] = " ".join(doc.value.value.split())
    return docs


def as_dict(settings: Experiment | Placement) -> dict[str, Any]:
    """Plain JSON-ready dict of a settings object (augmentation, sampling and transfer nested)."""
    return dataclasses.asdict(settings)


def differences(old: Experiment, new: Experiment) -> list[str]:
    """Human-readable list of the fields that differ between two experiments."""
    a, b = dotted(as_dict(old)), dotted(as_dict(new))
    return [f"{key}: {a.get(key)!r} -> {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


MAX_CONFIG_BYTES = 1 << 20
"""The largest settings file read (a run's config.json is a few kB)."""

MAX_YAML_NODES = 100_000
"""The most values a YAML settings file may expand to with its aliases counted out: a few lines
of nested aliases (a "billion laughs" file) expand to gigabytes when the settings are read."""


def _refuse_alias_bombs(path: Path, text: str) -> None:
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        raise RaycellsError(f"{path}: cannot parse the config file ({error}).") from error
    sizes: dict[int, int] = {}

    def expanded(node) -> int:  # each value counted as often as aliases repeat it
        if id(node) not in sizes:
            sizes[id(node)] = 1  # an alias of a node inside itself counts once
            children = (node.value if isinstance(node, yaml.SequenceNode) else
                        [part for pair in node.value for part in pair]
                        if isinstance(node, yaml.MappingNode) else [])
            sizes[id(node)] = 1 + sum(expanded(child) for child in children)
        return sizes[id(node)]

    if root is not None and expanded(root) > MAX_YAML_NODES:
        raise RaycellsError(f"{path}: its YAML aliases expand it to more than {MAX_YAML_NODES:,} "
                            "values, more than a settings file holds; write the values out instead.")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read settings from a .json, .toml or .yaml file. A file with a top-level "settings" table
    (a run's config.json, or tune's best.json) is read from there."""
    path = Path(path)
    if not path.is_file():
        raise RaycellsError(f"{path}: config file not found.")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise RaycellsError(f"{path}: config files are .json, .toml or .yaml.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise RaycellsError(f"{path}: {path.stat().st_size:,} bytes, more than a settings file "
                            f"holds (at most {MAX_CONFIG_BYTES:,}): is it the file meant?")
    text = path.read_text()
    if suffix in (".yaml", ".yml"):
        _refuse_alias_bombs(path, text)
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
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


def _table(cls: type, values: dict[str, Any], name: str) -> Any:
    """The nested settings `cls` from the table `values`, refusing names it does not have."""
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {name} settings {', '.join(sorted(unknown))}")
    return cls(**values)


def dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings (as `as_dict` gives them) under dotted names: {"augment": {"flip": 0.5}}
    -> {"augment.flip": 0.5}, the names `with_overrides` and search spaces take."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _whole(settings: Any, *names: str) -> None:
    """Refuse values of the fields `names` that are not whole numbers (true and 2.7 included)."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} = {value!r} is not valid: expected a whole number")


def _real(settings: Any, *names: str) -> None:
    """Refuse values of the fields `names` that are not finite numbers."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            raise ValueError(f"{name} = {value!r} is not valid: expected a finite number")


def _flag(settings: Any, *names: str) -> None:
    """Refuse values of the fields `names` that are not true or false."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, bool):
            raise ValueError(f"{name} = {value!r} is not valid: expected true or false")


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r} is not valid: expected {expected}")


def settings_text(params: dict[str, Any]) -> str:
    """Searched settings as text: "sampling.policy=oversample, lr=0.0021"."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
