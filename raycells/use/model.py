"""`raycells.load_model(path)`: trained networks in three lines of a notebook.

    import raycells
    model = raycells.load_model("exported/")          # or a run directory
    table = model.predict(["cell.jpg", pil_image])     # the table `raycells predict` writes

`path` is a folder written by `raycells export` (ONNX through onnxruntime, or safetensors weights
into the registry's architecture) or a run directory. A TorchScript export is refused here: its
file carries code, and raycells never runs code read from disk; load it with `torch.jit.load`
where you trust its source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..data.cache import load_square, square
from ..data.images import UnreadableImage, colour_stats, probe, thumbnail, to_rgb
from ..data.schemes import full_names
from ..errors import RaycellsError
from ..train.models import create_model
from .networks import EnsembleGraph, RunNetworks
from .outliers import TrainingRange
from .predict import prediction_table

Backend = Callable[[np.ndarray], np.ndarray]
"""(N, 3, S, S) float32 images scaled 0-1 -> (N, networks, classes) probabilities."""

BATCH = 32


@dataclass
class Model:
    """Networks ready to predict, with what they need to know about their inputs."""

    classes: list[str]
    image_size: int
    training_range: TrainingRange
    backend: Backend
    source: str
    """Where the networks were loaded from."""

    def predict(self, images: Sequence[str | os.PathLike | Image.Image], *,
                threshold: float = 0.5) -> pd.DataFrame:
        """The prediction table of `raycells predict` for image files or PIL images (a PIL image's
        path column reads "<image k>")."""
        pictures, facts, paths = [], [], []
        for index, image in enumerate(images):
            if isinstance(image, Image.Image):
                rgb = to_rgb(image)
                mean, std = colour_stats(thumbnail(rgb))
                width, height, path = rgb.width, rgb.height, f"<image {index}>"
                pictures.append(square(rgb, self.image_size))
            else:
                path = str(image)
                try:
                    found = probe(path)
                except UnreadableImage as error:
                    raise RaycellsError(f"{path}: {error}.") from None
                width, height, mean, std = found.width, found.height, found.mean, found.std
                pictures.append(load_square(path, self.image_size))
            paths.append(path)
            facts.append({"width": width, "height": height,
                          **{f"mean_{c}": v for c, v in zip("rgb", mean)},
                          **{f"std_{c}": v for c, v in zip("rgb", std)}})
        if not pictures:
            raise RaycellsError("predict: no images given. Pass image paths or PIL images.")
        batch = np.stack(pictures).transpose(0, 3, 1, 2).astype(np.float32) / 255
        each = np.concatenate([self.backend(batch[i:i + BATCH]) for i in range(0, len(batch), BATCH)])
        return prediction_table(paths, each.transpose(1, 0, 2), self.classes,
                                full_names(self.classes),
                                unusual=self.training_range.unusual(pd.DataFrame(facts)),
                                threshold=threshold)


def load_model(path: str | os.PathLike) -> Model:
    """The networks in `path`: a `raycells export` folder (ONNX or safetensors) or a run
    directory (every finished fold's networks, averaged)."""
    path = Path(path)
    if (path / "model.json").is_file():
        try:
            card = json.loads((path / "model.json").read_text())
            fmt, classes = card["format"], [entry["code"] for entry in card["classes"]]
            size, folds = int(card["input"]["shape"][2]), list(card["folds"])
            tta, name = bool(card["test_time_augmentation"]), card["architecture"]
            span = TrainingRange.from_dict(card["training_data"]["range"])
        except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
            raise RaycellsError(f"{path / 'model.json'}: not a raycells model card ({error!r}). "
                                "Export the run again with `raycells export`.") from None
        if fmt == "torchscript":
            raise RaycellsError(f"{path}: a TorchScript export carries code, which raycells never "
                                "runs from disk. Load it with torch.jit.load where you trust its "
                                "source, or export with --format onnx or safetensors.")
        file = (path / str(card.get("file", ""))).resolve()
        if file.parent != path.resolve():
            raise RaycellsError(f"{path / 'model.json'}: its file {card.get('file')!r} is not in "
                                f"{path}; an export's model file sits beside its model.json. "
                                "Export the run again with `raycells export`.")
        backend = load_backend(file, fmt, name, classes, folds, tta)
        return Model(classes, size, span, backend, str(path))
    if (path / "config.json").is_file():
        networks = RunNetworks.of(path)
        backend = _torch_backend(networks.modules(), networks.tta)
        return Model(networks.classes, networks.image_size, networks.training_range(), backend,
                     str(path))
    raise RaycellsError(f"{path}: neither an export (model.json) nor a run directory "
                        "(config.json). Pass the folder `raycells export --out` wrote, or a run.")


def load_backend(file: Path, fmt: str, architecture: str, classes: list[str], folds: list[int],
                 tta: bool) -> Backend:
    """The function that runs an exported file: onnxruntime for ONNX, the registry's
    architecture with the file's weights for safetensors."""
    if not file.is_file():
        raise RaycellsError(f"{file}: missing beside its model.json. Copy the export folder whole.")
    if fmt == "onnx":
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(file), providers=_providers(onnxruntime))
        except Exception as error:  # onnxruntime's own error types (Fail, InvalidGraph, ...)
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise RaycellsError(f"{file}: not a graph onnxruntime can load ({first[:300]}). "
                                "Export the run again.") from None
        return lambda images: session.run(["network_probabilities"], {"image": images})[0]
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(file))
        except (SafetensorError, OSError) as error:
            raise RaycellsError(f"{file}: cannot read the weights ({error}). Export again.") from None
        networks = []
        for k in folds:
            network = create_model(architecture, len(classes))
            prefix = f"fold{k}."
            try:
                network.load_state_dict({key.removeprefix(prefix): value
                                         for key, value in state.items() if key.startswith(prefix)})
            except RuntimeError as error:  # missing keys, or tensors of other shapes
                first = str(error).strip().splitlines()[0]
                raise RaycellsError(f"{file}: fold {k}'s weights do not fit a {architecture} of "
                                    f"{len(classes)} classes ({first[:300]}). Export the run "
                                    "again.") from None
            networks.append(network.eval())
        return _torch_backend(networks, tta)
    raise RaycellsError(f"{file}: format {fmt!r} cannot be loaded; export with --format onnx or "
                        "safetensors.")


def _providers(onnxruntime) -> list[str]:
    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _torch_backend(networks: list[torch.nn.Module], tta: bool) -> Backend:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    graph = EnsembleGraph(networks, tta).to(device).eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return graph(torch.from_numpy(images).to(device))[1].cpu().numpy()

    return run
