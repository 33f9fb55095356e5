"""Class activation maps: where in a cell image the networks found the evidence for a class.

Grad-CAM (Selvaraju et al. 2017) through Captum's `LayerGradCam`: the gradients of the class
score weigh the feature maps of the architecture's last spatial layer (the registry names it per
architecture: `raycells.train.models.cam_layer`), the weighted sum is kept where positive, and
scaled up to the image. Captum (the PyTorch project's attribution library) is used rather than
hand-written hooks: it handles the hooks, in-place activations and batching, and brings no
further dependency. For an ensemble the map is the mean of the fold networks' maps, each for the
same class.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.cache import load_square
from ..files import atomic_path
from ..train.inputs import prepare_images
from ..train.models import cam_layer
from .networks import EnsembleGraph, RunNetworks

DISPLAY = 256
"""Side of the pictures shown (the map is scaled up to it; the networks see their own size)."""
OPACITY = 0.45


def class_maps(networks: list[nn.Module], model_name: str, images: np.ndarray,
               targets: list[int]) -> np.ndarray:
    """Grad-CAM maps (N, size, size), each scaled to 0-1, of uint8 images (N, size, size, 3) for
    class index `targets[n]`, averaged over `networks` (built as registry model `model_name`)."""
    from captum.attr import LayerAttribution, LayerGradCam

    device = next(networks[0].parameters()).device
    x = prepare_images(torch.from_numpy(np.ascontiguousarray(images)).to(device))
    total = torch.zeros(len(images), 1, x.shape[2], x.shape[3], device=device)
    for network in networks:
        cam = LayerGradCam(network, cam_layer(network, model_name))
        found = cam.attribute(x, target=list(targets), relu_attributions=True)
        total += LayerAttribution.interpolate(found.detach(), tuple(x.shape[2:]), "bilinear")
    maps = total[:, 0].cpu().numpy() / len(networks)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def overlay(picture: np.ndarray, heat: np.ndarray) -> Image.Image:
    """The map `heat` (0-1, any size) in the turbo colours over `picture` (H, W, 3 uint8)."""
    from matplotlib import colormaps

    side = picture.shape[0]
    scaled = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(
        (side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    colours = colormaps["turbo"](scaled)[..., :3] * 255
    blended = (1 - OPACITY) * picture.astype(np.float32) + OPACITY * colours
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Explained:
    """One image's map: the overlay and what it shows."""

    path: str
    target: str
    """The class code the map is for."""
    probability: float
    """The networks' probability of that class."""
    picture: Image.Image
    """The image as the networks see it (the central square), at DISPLAY size."""
    overlay: Image.Image


class Explainer:
    """Networks (built as registry model `model_name`) on the best device here, ready to draw
    maps; `Explainer.of(RunNetworks.of(run))` for a run's."""

    def __init__(self, modules: list[nn.Module], model_name: str, classes: list[str],
                 image_size: int, tta: bool):
        self.model_name, self.classes, self.image_size = model_name, classes, image_size
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.modules = [module.to(self.device).eval() for module in modules]
        self.graph = EnsembleGraph(self.modules, tta).to(self.device).eval()

    @classmethod
    def of(cls, networks: RunNetworks) -> Explainer:
        return cls(networks.modules(), networks.model_name, networks.classes,
                   networks.image_size, networks.tta)

    def explain(self, paths: list[str], targets: list[str | None] | None = None, *,
                batch: int = 16, progress: Callable[[int, int], None] | None = None,
                ) -> list[Explained]:
        """Maps for the images at `paths`, each for its class in `targets` (None: the class the
        networks predict); `progress(done, total)` after each batch."""
        size, classes = self.image_size, self.classes
        targets = targets or [None] * len(paths)
        found = []
        for start in range(0, len(paths), batch):
            chunk = paths[start:start + batch]
            images = np.stack([load_square(path, size) for path in chunk])
            probs = self._probabilities(images)
            wanted = [classes.index(t) if t is not None else int(p.argmax())
                      for t, p in zip(targets[start:start + batch], probs)]
            maps = class_maps(self.modules, self.model_name, images, wanted)
            for path, index, p, heat in zip(chunk, wanted, probs, maps):
                picture = load_square(path, max(DISPLAY, size))
                found.append(Explained(path=path, target=classes[index], probability=float(p[index]),
                                       picture=Image.fromarray(picture), overlay=overlay(picture, heat)))
            if progress:
                progress(len(found), len(paths))
        return found

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        """What `raycells predict` gives these images (test-time augmentation as the run)."""
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return self.graph(x)[0].cpu().numpy()


def write_overlays(explained: list[Explained], folder: Path) -> list[Path]:
    """One PNG per image, named by its position and file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, item in enumerate(explained):
        path = folder / f"{index:04d}-{Path(item.path).stem}-{item.target}.png"
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(png_bytes(item.overlay))
        written.append(path)
    return written
