"""A finished run's networks, ready to use: which folds, what they are (architecture, classes,
input size, test-time augmentation) and the range of images they trained on; and the graph that
runs them together (what an export holds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.schemes import full_names
from ..runs.rundir import RunDir
from ..train.checkpoint import load_checkpoint
from ..train.inputs import MEAN, STD, dihedral_views
from ..train.models import create_model
from .outliers import TrainingRange


@dataclass(frozen=True)
class RunNetworks:
    run_dir: Path
    folds: list[int]
    """The folds whose best networks predict (their probabilities averaged)."""
    checkpoints: list[Path]
    model_name: str
    classes: list[str]
    """Class codes in output order."""
    image_size: int
    tta: bool
    """Whether the run predicts with test-time augmentation (the mean over 8 dihedral views)."""

    @classmethod
    def of(cls, run_dir: str | Path, fold: int | None = None) -> RunNetworks:
        """Every finished fold's network of `run_dir`, or fold `fold`'s (RaycellsError naming
        the fix when the run has none)."""
        run = RunDir(run_dir)
        folds = run.model_folds(fold)
        checkpoints = [run.checkpoint(k) for k in folds]
        first = load_checkpoint(checkpoints[0])
        return cls(run_dir=run.path, folds=folds, checkpoints=checkpoints,
                   model_name=first.model_name, classes=list(first.classes),
                   image_size=first.image_size, tta=bool(first.experiment.get("tta", False)))

    @property
    def names(self) -> dict[str, str]:
        """Class code -> full name."""
        return full_names(self.classes)

    def modules(self) -> list[torch.nn.Module]:
        """The fold networks with their best epoch's weights, in eval mode on the CPU."""
        networks = []
        for path in self.checkpoints:
            model = create_model(self.model_name, len(self.classes))
            model.load_state_dict(load_checkpoint(path).best_model)
            networks.append(model.eval())
        return networks

    def training_range(self) -> TrainingRange:
        """Sizes and colours of the images the networks trained on."""
        return TrainingRange.of(RunDir(self.run_dir).training_images(self.folds))


class EnsembleGraph(nn.Module):
    """0-1 RGB images in; (mean probabilities, each network's probabilities) out."""

    def __init__(self, networks: list[nn.Module], tta: bool):
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.tta = tta
        self.register_buffer("mean", MEAN.clone())
        self.register_buffer("std", STD.clone())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image - self.mean) / self.std
        views = dihedral_views(x) if self.tta else [x]
        each = torch.stack([torch.stack([torch.softmax(network(view), dim=1) for view in views]).mean(0)
                            for network in self.networks], dim=1)
        return each.mean(dim=1), each
