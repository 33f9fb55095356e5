"""Predictions from a fold's best model: `class_probabilities`, the one way raycells turns images
into probabilities (with or without test-time augmentation), and `predict_rows`, Ray Data batch
inference with it for networks read back from a run (`raycells evaluate`, `raycells predict`):
one actor per GPU when the cluster has them, one CPU actor otherwise, each holding every network
asked for, so that the images are read once. A fold's own test part is predicted by its first
training worker, after training (`raycells.train.loop`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data.pipeline import part_dataset
from .checkpoint import load_checkpoint
from .inputs import dihedral_views, prepare_images
from .models import create_model
from .precision import autocast, choose_precision


class BestModels:
    """Ray Data callable: class probabilities (images, networks, classes) of the best model in
    each of several checkpoint files, every network on every batch (one pass over the images)."""

    def __init__(self, checkpoints: list[str], threads: int, tta: bool):
        torch.set_num_threads(threads)
        self.tta = tta
        import ray

        # The GPU Ray gave this actor, if any: CUDA may be visible to an actor given none.
        self.device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
        self.models = []
        for path in checkpoints:
            checkpoint = load_checkpoint(path)
            model = create_model(checkpoint.model_name, len(checkpoint.classes))
            model.load_state_dict(checkpoint.best_model)
            self.models.append(model.to(self.device).eval())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        probs = [class_probabilities(model, batch["image"], self.device, self.tta)
                 for model in self.models]
        return {"row": batch["row"], "probs": np.stack(probs, axis=1)}


def class_probabilities(model: torch.nn.Module, images: np.ndarray, device: torch.device,
                        tta: bool) -> np.ndarray:
    """Class probabilities (N, classes) of a batch of uint8 images (N, H, W, 3) from `model` (in
    eval mode, on `device`); with `tta`, the mean over each image's 8 dihedral views."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    with torch.no_grad(), autocast(choose_precision("auto", device), device):
        x = prepare_images(x)
        views = dihedral_views(x) if tta else [x]
        probs = torch.stack([torch.softmax(model(v).float(), dim=1) for v in views]).mean(0)
    return probs.cpu().numpy()


def predict_rows(checkpoints: list[Path], cache: Path, size: int, labels: np.ndarray,
                 rows: np.ndarray, *, tta: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, probabilities (networks, rows, classes)) for the manifest rows `rows`, in row
    order, from the best model of each of `checkpoints` (checkpoint files or their folders), in
    one pass over the images: one actor per GPU of the cluster (one GPU each), or one CPU actor
    using every CPU, each holding every network; with `tta`, each image's probabilities are the
    mean over its 8 dihedral views. `progress(done, total)` is called as batches of images are
    done."""
    import ray
    import ray.data

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    dataset = part_dataset(cache, size, labels, rows).map_batches(
        BestModels, fn_constructor_kwargs={"checkpoints": [str(c) for c in checkpoints],
                                           "threads": max(1, int(resources.get("CPU", 1))),
                                           "tta": tta},
        batch_size=64, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=max(1, gpus)),
        num_gpus=1 if gpus else 0, num_cpus=1 if gpus else 0.5)
    out_rows, out_probs, done = [], [], 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        out_rows.append(batch["row"])
        out_probs.append(batch["probs"])
        done += len(batch["row"])
        if progress:
            progress(done, len(rows))
    order_rows = np.concatenate(out_rows)
    order = np.argsort(order_rows)
    return order_rows[order], np.concatenate(out_probs)[order].transpose(1, 0, 2)
