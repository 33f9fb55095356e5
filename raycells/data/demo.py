"""The built-in demo dataset: SYNTHETIC single-cell images, generated deterministically from a seed,
so that every command runs with no download.

The images are drawn, not photographed: a round cell on a pale background with a few red cells,
and for each of the 15 AML classes its own cell size, nucleus shape and size, cytoplasm colour and
granularity. Class sizes follow the skew of the real Munich AML dataset, scaled down (the largest
class has `largest` images, every class at least `smallest`). Every image depends only on
(seed, class, index), so a dataset is identical for the same seed on every machine.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import cache_dir, staged_folder
from .index import DEMO_MARKER
from .schemes import AML

DEMO_VERSION = 1
"""Bumped whenever the drawing changes, so cached copies of an older drawing are not reused."""

IMAGE_SIZE = 128


@dataclass(frozen=True)
class CellLook:
    """How one class is drawn; lengths are fractions of the image side."""

    cell_radius: float
    nucleus: str
    """Nucleus shape: round, eccentric, kidney, band, segmented, bilobed, small or smudge."""
    nucleus_size: float
    """Nucleus radius as a fraction of the cell radius."""
    cytoplasm: tuple[int, int, int]
    nucleus_colour: tuple[int, int, int]
    granules: float
    """Share of the cytoplasm covered by granules (0 to 1)."""
    granule_colour: tuple[int, int, int] = (120, 60, 130)
    chromatin: float = 0.25
    """Strength of the nucleus texture: fine (low) to coarse, clumped (high)."""


LOOKS: dict[str, CellLook] = {
    "BAS": CellLook(0.25, "bilobed", 0.55, (200, 170, 205), (95, 50, 120), 0.55, (60, 20, 90), 0.3),
    "EBO": CellLook(0.17, "small", 0.62, (150, 150, 190), (55, 30, 80), 0.0, chromatin=0.5),
    "EOS": CellLook(0.26, "bilobed", 0.5, (235, 165, 130), (110, 60, 140), 0.6, (215, 95, 60), 0.3),
    "KSC": CellLook(0.30, "smudge", 0.95, (205, 185, 225), (150, 110, 185), 0.0, chromatin=0.6),
    "LYA": CellLook(0.27, "eccentric", 0.68, (150, 175, 220), (95, 60, 145), 0.02, chromatin=0.35),
    "LYT": CellLook(0.19, "round", 0.82, (165, 185, 225), (75, 40, 120), 0.0, chromatin=0.45),
    "MMZ": CellLook(0.25, "kidney", 0.55, (225, 195, 200), (105, 60, 140), 0.15, (170, 110, 150), 0.35),
    "MOB": CellLook(0.30, "round", 0.72, (165, 170, 215), (140, 105, 180), 0.02, chromatin=0.12),
    "MON": CellLook(0.29, "kidney", 0.62, (185, 180, 215), (120, 80, 160), 0.04, (170, 130, 185), 0.2),
    "MYB": CellLook(0.26, "eccentric", 0.58, (220, 185, 205), (105, 60, 145), 0.25, (150, 80, 150), 0.3),
    "MYO": CellLook(0.26, "round", 0.76, (160, 165, 215), (125, 85, 170), 0.03, chromatin=0.12),
    "NGB": CellLook(0.25, "band", 0.7, (228, 200, 210), (100, 50, 135), 0.12, (185, 130, 170), 0.35),
    "NGS": CellLook(0.25, "segmented", 0.7, (228, 200, 210), (95, 45, 130), 0.12, (185, 130, 170), 0.35),
    "PMB": CellLook(0.29, "bilobed", 0.62, (200, 175, 215), (120, 80, 160), 0.35, (110, 40, 120), 0.2),
    "PMO": CellLook(0.29, "eccentric", 0.66, (195, 175, 215), (120, 80, 160), 0.35, (110, 40, 120), 0.2),
}


def demo_counts(largest: int = 300, smallest: int = 12) -> dict[str, int]:
    """Images per class: the real AML counts scaled so the largest class has `largest`, with a
    floor of `smallest` so that every class survives 5-fold CV with an inner validation split."""
    top = max(AML.counts.values())
    return {code: max(smallest, round(AML.counts[code] * largest / top)) for code in AML.codes}


def draw_cell(code: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """One synthetic cell of class `code` as a (size, size, 3) uint8 array."""
    look = LOOKS[code]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = _background(rng, xs, ys, size)

    centre = 0.5 + rng.normal(0, 0.03, 2)
    radius = look.cell_radius * rng.uniform(0.9, 1.1)
    angle = rng.uniform(0, 2 * np.pi)
    u, v = _rotate(xs - centre[0], ys - centre[1], angle)
    stretch = rng.uniform(0.92, 1.08)
    wobble = 1 + 0.03 * np.sin(5 * np.arctan2(v, u) + rng.uniform(0, 2 * np.pi))
    cell_distance = np.hypot(u * stretch, v / stretch) - radius * wobble

    cytoplasm = np.array(look.cytoplasm, np.float32) * rng.uniform(0.95, 1.05, 3)
    cell = _soft(cell_distance, 1.5 / size)
    if look.nucleus == "smudge":
        cell = cell * 0.0
    image = _paint(image, cell, cytoplasm)

    if look.granules > 0:
        speckle = _blur(rng.random((size, size)) < look.granules * 0.35, 1)
        granules = np.clip(speckle * 3, 0, 1) * cell
        image = _paint(image, granules * 0.8, np.array(look.granule_colour, np.float32))

    nucleus_distance = _nucleus_distance(look, u, v, radius, rng)
    nucleus = _soft(nucleus_distance, 1.2 / size)
    texture = _blur(rng.normal(0, 1, (size, size)), 2)
    texture = 1 + look.chromatin * texture / (np.abs(texture).max() + 1e-6)
    colour = np.array(look.nucleus_colour, np.float32) * rng.uniform(0.93, 1.07, 3)
    image = _paint(image, nucleus, colour[None, None, :] * texture[..., None])

    image += rng.normal(0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_demo(folder: str | os.PathLike, *, seed: int = 0, largest: int = 300,
               smallest: int = 12, processes: int | None = None) -> Path:
    """Write the demo dataset as `<folder>/<CLS>/<CLS>_NNNN.png` plus a marker file that labels
    it synthetic, drawing in `processes` processes (default: one per core). Returns the folder."""
    folder = Path(folder)
    processes = processes or os.cpu_count() or 1
    counts = demo_counts(largest, smallest)
    cells = []
    for class_index, code in enumerate(AML.codes):
        (folder / code).mkdir(parents=True, exist_ok=True)
        cells += [(folder, seed, class_index, i) for i in range(counts[code])]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_write_cell, cells, chunksize=64))
    else:
        for cell in cells:
            _write_cell(cell)
    marker = {"synthetic": True, "generator": "raycells.data.demo", "version": DEMO_VERSION,
              "seed": seed, "counts": counts,
              "note": "SYNTHETIC images drawn by raycells for demos and tests; not real cells."}
    (folder / DEMO_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return folder


def _write_cell(cell: tuple[Path, int, int, int]) -> None:
    folder, seed, class_index, i = cell
    code = AML.codes[class_index]
    image = draw_cell(code, np.random.default_rng([seed, class_index, i]))
    # Fast compression: the same pixels, a quarter of the encoding time, files ~15 % larger.
    Image.fromarray(image).save(folder / code / f"{code}_{i:04d}.png", compress_level=1)


def demo_dataset(seed: int = 0) -> Path:
    """The demo dataset folder for `seed`, generated into the cache on first use."""
    folder = cache_dir() / f"demo-v{DEMO_VERSION}-seed{seed}"
    if (folder / DEMO_MARKER).is_file():
        return folder
    with staged_folder(folder, DEMO_MARKER) as staging:
        write_demo(staging, seed=seed)
    return folder


def _nucleus_distance(look: CellLook, u, v, radius: float, rng: np.random.Generator):
    r = radius * look.nucleus_size * rng.uniform(0.92, 1.08)
    kind = look.nucleus
    if kind == "round":
        return np.hypot(u, v) - r
    if kind == "small":
        return np.hypot(u - 0.1 * radius, v) - r * 0.75
    if kind == "eccentric":
        return np.hypot(u - radius * (1 - look.nucleus_size) * 0.8, v) - r
    if kind == "kidney":
        body = np.hypot(u, v) - r
        notch = np.hypot(u - r * 0.95, v) - r * 0.55
        return np.maximum(body, -notch)
    if kind == "band":
        ring = np.abs(np.hypot(u, v) - r * 0.75) - r * 0.22
        return np.maximum(ring, -(u + r * 0.35))
    if kind == "segmented":
        lobes = rng.integers(3, 5)
        angles = np.linspace(-0.9, 0.9, lobes) * np.pi * 0.6
        return np.min([np.hypot(u - r * 0.7 * np.cos(a), v - r * 0.7 * np.sin(a)) - r * 0.34
                       for a in angles], axis=0)
    if kind == "bilobed":
        return np.minimum(np.hypot(u - r * 0.5, v) - r * 0.55, np.hypot(u + r * 0.5, v) - r * 0.55)
    if kind == "smudge":
        ragged = 1 + 0.25 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6)) \
                   + 0.15 * np.sin(7 * np.arctan2(v, u) + rng.uniform(0, 6))
        return np.hypot(u, v) - r * ragged
    raise ValueError(f"unknown nucleus shape {kind}")


def _background(rng: np.random.Generator, xs, ys, size: int) -> np.ndarray:
    tint = np.array([236, 224, 228], np.float32) * rng.uniform(0.97, 1.02, 3)
    image = np.broadcast_to(tint, (size, size, 3)).copy()
    shade = _blur(rng.normal(0, 1, (size, size)), 8)
    image *= (1 + 0.04 * shade / (np.abs(shade).max() + 1e-6))[..., None]
    for _ in range(rng.integers(1, 4)):  # red cells at the edges, cut off by the frame
        angle = rng.uniform(0, 2 * np.pi)
        cx, cy = 0.5 + 0.48 * np.cos(angle), 0.5 + 0.48 * np.sin(angle)
        r = rng.uniform(0.1, 0.14)
        d = np.hypot(xs - cx, ys - cy)
        disc = _soft(d - r, 1.5 / size) * (1 - 0.35 * np.exp(-((d / (0.5 * r)) ** 2)))
        image = _paint(image, disc, np.array([225, 160, 165], np.float32))
    return image


def _rotate(x, y, angle: float):
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def _soft(distance, edge: float):
    """A mask that is 1 inside (distance < 0), 0 outside, with an antialiased edge."""
    return np.clip(0.5 - distance / (2 * edge), 0.0, 1.0)


def _paint(image, mask, colour):
    return image * (1 - mask[..., None]) + mask[..., None] * colour


def _blur(values, passes: int):
    """Cheap separable box blur (repeated), enough for textures."""
    out = np.asarray(values, np.float32)
    for _ in range(passes):
        out = (np.roll(out, 1, 0) + out + np.roll(out, -1, 0)) / 3
        out = (np.roll(out, 1, 1) + out + np.roll(out, -1, 1)) / 3
    return out
