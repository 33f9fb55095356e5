"""The checkpoint format, in one place: what `fold-<k>/checkpoint/epoch-NNN/state.pt` holds, and
how it is written and read.

The file is one torch file of tensors and plain data (numbers, strings, lists, dicts): what the
network is (`model_name`, `classes`, `image_size`, `experiment`: the settings as a dict), the
last epoch's state to continue from (`model`, `optimizer`, `scaler`), and the fold's progress
(`epoch`, `step`, `phase`, `phase_start_step`, `history`, `best`, `restored_from`). It is read
with `weights_only=True`: a checkpoint from someone else's run directory cannot run code.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import RaycellsError

FILE = "state.pt"
PATTERN = f"epoch-*/{FILE}"
"""A fold's checkpoint files, relative to its checkpoint/ folder: epoch-NNN, or epoch-NNN-rK
after K restarts; sorted by name, the last is the newest."""


@dataclass
class Progress:
    """How far a fold's training got: what a restarted worker continues from."""

    epoch: int = -1
    """The last finished epoch, from 0 (-1: none yet)."""
    step: int = 0
    """Optimisation steps taken, over all phases."""
    phase: str | None = None
    """The phase of the last epoch."""
    phase_start_step: int = 0
    """The step at which that phase began (its schedule starts there)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per finished epoch (history.csv)."""
    best: dict[str, Any] | None = None
    """The best epoch on the inner validation split: epoch, val_macro_f1, val_loss and model
    (its weights)."""
    restored_from: list[int] = field(default_factory=list)
    """Epochs finished when each restart began (empty for an uninterrupted fold)."""

    def record(self, epoch: int, record: dict[str, Any], model: torch.nn.Module,
               keep: str = "best") -> None:
        """Add epoch `epoch`'s record; keep the model's weights if the epoch is the best so far
        (highest validation macro F1, then lowest validation loss), or with `keep="last"` always
        (the kept network is then the last epoch's)."""
        self.history.append(record)
        self.epoch = epoch
        best = self.best
        if keep == "last" or best is None or ((record["val_macro_f1"], -record["val_loss"])
                                              > (best["val_macro_f1"], -best["val_loss"])):
            self.best = {"epoch": epoch + 1, "val_macro_f1": record["val_macro_f1"],
                         "val_loss": record["val_loss"],
                         "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


@dataclass
class Checkpoint:
    model_name: str
    classes: list[str]
    image_size: int
    experiment: dict[str, Any]
    progress: Progress
    model: dict[str, torch.Tensor]
    """The last epoch's weights."""
    optimizer: dict[str, Any]
    scaler: dict[str, Any]

    @property
    def best_model(self) -> dict[str, torch.Tensor]:
        """The weights of the best epoch: the fold's network."""
        return self.progress.best["model"]


def save_checkpoint(checkpoint: Checkpoint, folder: str | Path) -> Path:
    """Write `checkpoint` into `folder` (a fresh folder that Ray Train then keeps)."""
    path = Path(folder) / FILE
    content = {f.name: getattr(checkpoint, f.name) for f in fields(Checkpoint) if f.name != "progress"}
    progress = {f.name: getattr(checkpoint.progress, f.name) for f in fields(Progress)}
    torch.save({**progress, **content}, path)
    return path


def read_torch_file(path: str | Path, fix: str) -> Any:
    """The content of a torch file read with `weights_only=True` (tensors and plain data only: a
    file that would run code on loading is refused, never executed). Any failure is a
    RaycellsError naming the file, what went wrong and `fix`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        what = ("it holds objects other than tensors and plain data, which raycells never loads "
                "(loading them could run code)" if isinstance(error, pickle.UnpicklingError)
                else f"it cannot be read ({str(error).splitlines()[0] if str(error) else error!r})")
        raise RaycellsError(f"{path}: {what}. {fix}") from None


def newest_readable(path: str | Path) -> Checkpoint:
    """The checkpoint in folder `path`, or when it cannot be read (a file cut short by a full
    disk or a killed write) the newest older one beside it (the epoch a fold restarts from,
    in its metrics.json's restored_from, says which)."""
    path = Path(path)
    older = sorted((p.parent for p in path.parent.glob(PATTERN) if p.parent.name < path.name),
                   reverse=True)
    damaged: list[Path] = []
    for folder in [path, *older]:
        try:
            return load_checkpoint(folder)
        except RaycellsError:
            if folder == path and not older:
                raise
            damaged.append(folder / FILE)
    raise RaycellsError(f"{path.parent}: no checkpoint there can be read (damaged: "
                        f"{', '.join(map(str, damaged))}). Start the fold again: delete "
                        f"{path.parent} and resume.")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in `path`: a state.pt file or the folder holding one."""
    path = Path(path)
    path = path / FILE if path.is_dir() else path
    saved = read_torch_file(path, "Take the run directory as raycells wrote it, or start the run "
                                  "again.")
    try:
        progress = Progress(**{f.name: saved[f.name] for f in fields(Progress) if f.name in saved})
        return Checkpoint(progress=progress, **{f.name: saved[f.name] for f in fields(Checkpoint)
                                                if f.name != "progress"})
    except (KeyError, TypeError, AttributeError) as error:
        raise RaycellsError(f"{path}: not a raycells checkpoint (no {error}). Take the run "
                            "directory as raycells wrote it.") from error
