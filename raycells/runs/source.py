"""The network a transfer starts from: a fold's best model in a run directory (`fold`, or by
default the fold whose best epoch scored the highest inner-validation macro F1) or a weights file
together with its architecture. Its weights are copied into the new run directory as source.pt,
so the run holds everything it needs (a resumed run reads them from there). `raycells transfer`
trains from it; `raycells tune --from` searches its transfer settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.manifest import Manifest
from ..errors import RaycellsError
from ..files import atomic_path
from ..train.checkpoint import PATTERN, load_checkpoint
from ..train.models import create_model, load_weights, state_dict_in
from .rundir import RunDir, overlap_with_training

SOURCE_FILE = "source.pt"


@dataclass
class Source:
    """A trained network to start from."""

    path: str
    """The run directory or weights file it came from."""
    model: str
    fold: int | None
    """The source run's fold (None for a weights file)."""
    classes: list[str] | None
    image_size: int | None
    """The source network's input size (None when unknown: a weights file)."""
    weights: dict[str, torch.Tensor]
    val_macro_f1: float | None = None

    def describe(self) -> str:
        if self.fold is None:
            return f"{self.path} ({self.model})"
        return (f"{self.path}, fold {self.fold} ({self.model}, validation macro F1 "
                f"{self.val_macro_f1:.3f})")

    def summary(self) -> dict[str, Any]:
        """What config.json records about the source."""
        return {"from": self.path, "fold": self.fold, "model": self.model,
                "classes": self.classes, "image_size": self.image_size,
                "val_macro_f1": self.val_macro_f1}


def choose_source(from_: str | Path | None, *, fold: int | None = None, best: bool = False,
                  model: str | None = None, resume: bool = False) -> Source | None:
    """The source network that the options name (`--from`, `--fold` or `--best`, `--model`); None
    when resuming, which continues with the run's own copy (source.pt)."""
    if fold is not None and best:
        raise RaycellsError("--fold and --best both choose the source fold: give one.")
    if resume:
        if from_ is not None or model is not None:
            raise RaycellsError("--resume continues with the run's own source network: leave "
                                "out --from and --model.")
        return None
    if from_ is None:
        raise RaycellsError("--from is needed: the run directory or weights file of the trained "
                            "network.")
    return find_source(from_, fold=fold, model=model)


def find_source(path: str | Path, *, fold: int | None = None, model: str | None = None) -> Source:
    """The network in `path`: a run directory (its fold `fold`, or the best one) or a weights
    file (which needs `model`, its architecture)."""
    path = Path(path)
    if path.is_dir():
        if model is not None:
            raise RaycellsError(f"--model {model}: the network of a run directory is the run's "
                                f"own; --model goes with a weights file (--from FILE.pt).")
        return _from_run(RunDir(path), fold)
    if not path.is_file():
        raise RaycellsError(f"--from {path}: no such run directory or weights file.")
    if fold is not None:
        raise RaycellsError(f"--fold {fold}: folds belong to a run directory, not to the weights "
                            f"file {path}.")
    if model is None:
        raise RaycellsError(f"--from {path} is a weights file: name its architecture with --model.")
    network = create_model(model, _head_size(path))
    load_weights(network, path)
    return Source(path=str(path), model=model, fold=None, classes=None, image_size=None,
                  weights=network.state_dict())


def source_settings(source: Source, out: str | Path) -> dict[str, Any]:
    """Settings (as build_settings flags) that start a run in `out` from `source`: its
    architecture, the weights that `out` will hold, its input size when known."""
    return {"model": source.model, "weights": str((Path(out) / SOURCE_FILE).resolve()),
            "image_size": source.image_size, "transfer": {"source": source.describe()}}


def transfer_flags(source: Source | None, out: str | Path, flags: dict[str, Any]) -> dict[str, Any]:
    """`flags` (as build_settings takes them) for a transfer run in `out` from `source`: the
    source's settings where the flags leave them open, the transfer options in their table."""
    flags = dict(flags)
    phases = {key: flags.pop(key) for key in ("head_epochs", "head_lr", "freeze_batchnorm")
              if flags.get(key) is not None}
    if source is None:  # resuming: the run's config.json holds the source's settings
        return {**flags, "transfer": phases or None}
    start = source_settings(source, out)
    flags["transfer"] = {**start.pop("transfer"), **phases}
    return {**flags, **{key: value for key, value in start.items() if flags.get(key) is None}}


def _from_run(run: RunDir, fold: int | None) -> Source:
    folds = run.training_settings()["folds"]
    finished = [k for k in range(folds) if run.fold_finished(k)]
    if fold is not None:
        if not 0 <= fold < folds:
            raise RaycellsError(f"--fold {fold}: {run.path} has folds 0 to {folds - 1}.")
        if fold not in finished:
            raise RaycellsError(f"{run.fold(fold)} is not finished: finish it with `raycells cv "
                                f"--resume --out {run.path}`, or choose a finished fold "
                                f"({', '.join(map(str, finished)) or 'none yet'}).")
        candidates = [fold]
    else:
        candidates = finished
    states = {}
    for k in candidates:
        checkpoint = run.checkpoint(k)
        if checkpoint is None:
            raise RaycellsError(f"{run.fold(k)} has no checkpoint (checkpoint/{PATTERN}): "
                                "the run's networks were not kept. Choose another run or fold.")
        states[k] = load_checkpoint(checkpoint)
    if not states:
        raise RaycellsError(f"{run.path}: no finished fold to take a network from. Finish the "
                            f"run first (`raycells cv --resume --out {run.path}`).")
    best = max(states, key=lambda k: states[k].progress.best["val_macro_f1"])
    state = states[best]
    return Source(path=str(run.path), model=state.model_name, fold=best,
                  classes=list(state.classes), image_size=state.image_size,
                  weights=state.best_model, val_macro_f1=state.progress.best["val_macro_f1"])


def _head_size(path: Path) -> int:
    """The number of classes of the network in a weights file (the rows of its last 2-d weight)."""
    matrices = [value for value in state_dict_in(path).values() if value.dim() == 2]
    if not matrices:
        raise RaycellsError(f"{path}: no linear layer in these weights; is it a model's state dict?")
    return int(matrices[-1].shape[0])


def keep_source(run: RunDir, source: Source, manifest: Manifest | None, *,
                allow_overlap: bool = False) -> list[str]:
    """Copy `source`'s weights into the new run directory `run` (source.pt); returns the data
    warnings to record. Images the source network trained on (by sha1) would be scored after
    training on them: refused unless `allow_overlap`, and then the warning."""
    warnings = []
    if source.fold is not None and manifest is not None:
        overlap = overlap_with_training(manifest.frame, RunDir(source.path), [source.fold],
                                        allow=allow_overlap)
        warnings = [overlap] if overlap else []
    run.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.path / SOURCE_FILE) as tmp:
        torch.save({**source.summary(), "model_name": source.model, "model": source.weights}, tmp)
    return warnings
