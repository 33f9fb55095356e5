"""The checkpoint format, in one place: what `fold-<k>/checkpoint/epoch-NNN/state.pt` holds, and
how it is written and read.

The file is one torch file of tensors and plain data (numbers, strings, lists, dicts): what the
network is (`model_name`, `classes`, `image_size`, `experiment`: the settings as a dict), the
last epoch's state to continue from (`model`, `optimizer`, `scaler`), and the fold's progress
(`epoch`, `step`, `phase`, `phase_start_step`, `history`, `best`, `restored_from`). It is read
with `weights_only=True`: a checkpoint from someone else's run directory cannot run code.

The best epoch's weights (the fold's network) are stored once, beside the epoch folders, as
`checkpoint/best-epoch-NNN.safetensors`; a checkpoint's `best` names its file. Only the files
that the kept checkpoints name stay (`prune_best`). After the last epoch, the first training
worker predicts the fold's test part with that network and writes the probabilities beside it
(`test_file`: `test-best-epoch-NNN.npz`, rows and probs), for the driver to turn into
predictions.parquet.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RaycellsError
from ..files import atomic_path

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
    """The best epoch on the inner validation split: epoch, val_macro_f1, val_loss and file (its
    weights, `best-epoch-NNN.safetensors` beside the epoch folders)."""
    restored_from: list[int] = field(default_factory=list)
    """Epochs finished when each restart began (empty for an uninterrupted fold)."""

    def record(self, epoch: int, record: dict[str, Any], keep: str = "best") -> bool:
        """Add epoch `epoch`'s record. True when its network is now the fold's: the best so far
        (highest validation macro F1, then lowest validation loss), or with `keep="last"` always;
        the caller then writes it (`save_best`)."""
        self.history.append(record)
        self.epoch = epoch
        best = self.best
        if keep == "last" or best is None or ((record["val_macro_f1"], -record["val_loss"])
                                              > (best["val_macro_f1"], -best["val_loss"])):
            self.best = {"epoch": epoch + 1, "val_macro_f1": record["val_macro_f1"],
                         "val_loss": record["val_loss"], "file": best_file(epoch + 1)}
            return True
        return False


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
    path: Path | None = None
    """The state.pt file it was read from (None while training: not written yet)."""

    @property
    def best_model(self) -> dict[str, torch.Tensor]:
        """The weights of the best epoch: the fold's network (held in the checkpoint itself by
        runs of raycells before the separate file)."""
        best = self.progress.best
        if "model" in best:
            return best["model"]
        return read_best(self.path.parent.parent / best["file"])


BEST_PATTERN = "best-epoch-*.safetensors"
"""The fold networks' files in a checkpoint folder (`best_file`)."""


def best_file(epoch: int) -> str:
    """The file name of epoch `epoch`'s (from 1) weights when they are the fold's network."""
    return f"best-epoch-{epoch:03d}.safetensors"


def save_best(model: torch.nn.Module, folder: str | Path, name: str) -> None:
    """Write `model`'s weights as `folder`/`name` (safetensors: tensors only, readable without
    raycells), atomically."""
    from safetensors.torch import save_file

    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(Path(folder) / name) as tmp:
        save_file(state, str(tmp))


def read_best(path: Path) -> dict[str, torch.Tensor]:
    """The weights in a `save_best` file (RaycellsError naming it when it cannot be read)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise RaycellsError(f"{path}: the fold's network cannot be read ({error}). Take the run "
                            "directory as raycells wrote it, or train the fold again.") from None


def test_file(best: str) -> str:
    """The name of the test part's probabilities from the network in file `best`."""
    return f"test-{Path(best).stem}.npz"


def save_test_probabilities(folder: str | Path, best: str, rows: np.ndarray,
                            probs: np.ndarray) -> None:
    """Write the test part's manifest `rows` and their class probabilities `probs`, as predicted
    by the network in `folder`/`best`, atomically."""
    with atomic_path(Path(folder) / test_file(best)) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, rows=rows, probs=probs)


def read_test_probabilities(folder: str | Path, best: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, probs) as `save_test_probabilities` wrote them (RaycellsError naming the file when
    they are missing or cannot be read; nothing in the file is unpickled)."""
    path = Path(folder) / test_file(best)
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["rows"], saved["probs"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise RaycellsError(f"{path}: the fold's test predictions cannot be read ({error}). "
                            "Resume the run: the fold predicts its test part again.") from None


def prune_best(folder: str | Path, keep: set[str]) -> None:
    """Remove the best-epoch files in `folder` but those named in `keep`: the files the kept
    checkpoints name (a fold resumes from either)."""
    for path in Path(folder).glob(BEST_PATTERN):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def save_checkpoint(checkpoint: Checkpoint, folder: str | Path) -> Path:
    """Write `checkpoint` into `folder` (a fresh folder that Ray Train then keeps)."""
    path = Path(folder) / FILE
    content = {f.name: getattr(checkpoint, f.name) for f in fields(Checkpoint)
               if f.name not in ("progress", "path")}
    progress = {f.name: getattr(checkpoint.progress, f.name) for f in fields(Progress)}
    torch.save({**progress, **content}, path)
    return path


def read_torch_file(path: str | Path, fix: str) -> Any:
    """The content of a torch file read with `weights_only=True` (tensors and plain data only: a
    file that would run code on loading is refused, never executed); argparse's Namespace, a
    plain record that timm's training script saves its settings in, is read as data too. Any
    failure is a RaycellsError naming the file, what went wrong and `fix`."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        what = ("it holds objects other than tensors and plain data, which raycells never loads "
                "(loading them could run code)" if isinstance(error, pickle.UnpicklingError)
                else f"it cannot be read ({str(error).splitlines()[0] if str(error) else error!r})")
        raise RaycellsError(f"{path}: {what}. {fix}") from None


def newest_readable(folder: str | Path, recorded: str | Path | None = None) -> Checkpoint | None:
    """The newest checkpoint in a fold's checkpoint `folder` that can be read: Ray Train's last
    (`recorded`), or one written after it (Ray Train records a checkpoint at its next look at the
    workers, so a driver killed mid-fold leaves the last epoch or two unrecorded, or all of them
    when the epochs are short); None when the fold has none. One cut short (a full disk, a
    killed write) is passed over for the one before it (the epoch a fold restarts from, in its
    metrics.json's restored_from, says which)."""
    folder = Path(folder)
    written = {p.parent for p in folder.glob(PATTERN)} | ({Path(recorded)} if recorded else set())
    if not written:
        return None
    damaged: list[Path] = []
    for epoch in sorted(written, key=_epoch_order, reverse=True):
        try:
            return load_checkpoint(epoch)
        except RaycellsError:
            if len(written) == 1:
                raise
            damaged.append(epoch / FILE)
    raise RaycellsError(f"{folder}: no checkpoint there can be read (damaged: "
                        f"{', '.join(map(str, damaged))}). Start the fold again: delete "
                        f"{folder} and resume.")


def recorded_best(recorded: str | Path | None, restored: Checkpoint) -> str | None:
    """The network file that Ray Train's last recorded checkpoint (`recorded`) names: Ray Train
    keeps that checkpoint beside the next one reported, so its file must stay. The `restored`
    checkpoint's own when it is the recorded one; None when Ray Train recorded none or the
    recorded one cannot be read (cut short: no fold resumes from it)."""
    if recorded is None:
        return None
    if Path(recorded).resolve() == Path(restored.path).parent.resolve():
        return (restored.progress.best or {}).get("file")
    try:
        return (load_checkpoint(recorded).progress.best or {}).get("file")
    except RaycellsError:
        return None


def _epoch_order(folder: Path) -> tuple[int, int]:
    """(epoch, restarts) of a checkpoint folder epoch-NNN or epoch-NNN-rK: a later restart's
    checkpoint of an epoch comes after an earlier one's."""
    epoch, _, restarts = folder.name.removeprefix("epoch-").partition("-r")
    return int(epoch), int(restarts or 0)


def drop_untracked(kept: list[Path]) -> None:
    """Remove the epoch folders beside the checkpoints `kept` (the ones Ray Train keeps) that it
    does not track: those a killed driver left unrecorded, and checkpoints cut short. Their
    networks' files may already be pruned (`prune_best`); a fold must not resume from them."""
    if not kept:
        return
    import shutil

    kept = {Path(path).resolve() for path in kept}
    for state in next(iter(kept)).parent.glob(PATTERN):
        if state.parent.resolve() not in kept:
            shutil.rmtree(state.parent, ignore_errors=True)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in `path`: a state.pt file or the folder holding one."""
    path = Path(path)
    path = path / FILE if path.is_dir() else path
    saved = read_torch_file(path, "Take the run directory as raycells wrote it, or start the run "
                                  "again.")
    try:
        progress = Progress(**{f.name: saved[f.name] for f in fields(Progress) if f.name in saved})
        checkpoint = Checkpoint(progress=progress, path=path, **{
            f.name: saved[f.name] for f in fields(Checkpoint) if f.name not in ("progress", "path")})
    except (KeyError, TypeError, AttributeError) as error:
        raise RaycellsError(f"{path}: not a raycells checkpoint (no {error}). Take the run "
                            "directory as raycells wrote it.") from error
    best = (progress.best or {}).get("file")
    if best is not None and not (isinstance(best, str) and re.fullmatch(r"best-epoch-\d{3,}\.safetensors", best)):
        # The network's file is read from beside the epoch folders, never from elsewhere.
        raise RaycellsError(f"{path}: its best network is named {best!r}, not a file of the fold's "
                            f"checkpoint folder ({BEST_PATTERN}). Take the run directory as "
                            "raycells wrote it.")
    return checkpoint
