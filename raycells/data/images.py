"""Reading single-cell image files: which files are images, checking that one decodes (and
recording what it looks like on the way), and loading it as 8-bit RGB whatever mode it was saved
in."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"})

_CONVERTED_MODES = {
    "RGBA": "has an alpha channel, which is dropped on load",
    "LA": "is grayscale with alpha; the alpha channel is dropped and gray copied to R, G and B",
    "PA": "has a palette with alpha; it is converted to RGB and the alpha channel dropped",
    "L": "is grayscale; gray is copied to R, G and B on load",
    "1": "is black-and-white; it is converted to RGB on load",
    "P": "has a colour palette; it is converted to RGB on load",
    "CMYK": "is CMYK; it is converted to RGB on load",
    "YCbCr": "is YCbCr; it is converted to RGB on load",
    "I;16": "is 16-bit; it is scaled to 8 bits per channel on load (check the contrast, or save "
    "the files as 8-bit RGB yourself)",
    "I": "is 16/32-bit integer; it is scaled to 8 bits per channel on load (check the contrast, "
    "or save the files as 8-bit RGB yourself)",
}
for _mode in ("I;16B", "I;16L", "I;16N"):
    _CONVERTED_MODES[_mode] = _CONVERTED_MODES["I;16"]


BYTES_PER_PIXEL = 8
"""The most bytes a pixel takes in an image file (16-bit RGBA, uncompressed)."""

MAX_PIXELS = Image.MAX_IMAGE_PIXELS
"""Largest image (width x height) read by default: Pillow's guard against decompression bombs,
files that decode to far more memory than their size suggests. `--max-pixels` raises it for
legitimately large scans."""


class UnreadableImage(Exception):
    """A file with an image name that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ImageFacts:
    """What indexing records of one readable image."""

    sha1: str
    width: int
    height: int
    mode: str
    format: str
    """The file format Pillow found (JPEG, PNG, TIFF, ...), whatever the file name says."""
    file_bytes: int
    quant: str
    """A short hash of a JPEG's quantisation tables (the encoder's quality setting); "" otherwise."""
    dhash: str
    """64-bit difference hash (16 hex digits) of a 9x8 grey thumbnail: near-identical pictures
    have hashes a few bits apart."""
    mean: tuple[float, float, float]
    """Mean of each RGB channel, 0-1, on a thumbnail."""
    std: tuple[float, float, float]
    """Standard deviation of each RGB channel, 0-1, on a thumbnail."""


def is_image_name(path: str | os.PathLike) -> bool:
    """True for file names with an image suffix (hidden files included: they may be strays)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_SUFFIXES


def mode_note(mode: str) -> str | None:
    """How an image saved in `mode` is converted on load, or None for plain RGB."""
    return None if mode == "RGB" else _CONVERTED_MODES.get(mode, f"is in mode {mode}; converted to RGB")


def probe(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> ImageFacts:
    """Hash the file and decode it completely (JPEGs at reduced scale, which still reads every
    byte), so that truncated or corrupt files are found at indexing time, not during training.
    Images larger than `max_pixels` are refused before decoding."""
    try:
        size = Path(path).stat().st_size
        if size > max_pixels * BYTES_PER_PIXEL + (1 << 20):  # before reading it into memory
            raise UnreadableImage(
                f"{size:,} bytes, more than any image of at most {max_pixels:,} pixels (--max-pixels) "
                "takes: not a single-cell image; delete it or move it out of the dataset")
        data = Path(path).read_bytes()
    except OSError as error:
        raise UnreadableImage(f"cannot read the file ({error.strerror}): check its permissions") from error
    except MemoryError:
        raise UnreadableImage(f"{size:,} bytes do not fit in memory: not a single-cell image; "
                              "delete it or move it out of the dataset") from None
    if not data:
        raise UnreadableImage("the file is empty (0 bytes): copy it again from the source or delete it")
    image = _open(data)
    width, height, mode = image.width, image.height, image.mode
    if width * height > max_pixels:
        raise UnreadableImage(
            f"{width}x{height} is {width * height:,} pixels, more than the {max_pixels:,} read by "
            "default (a guard against decompression bombs): if it is a real scan, pass "
            f"--max-pixels {width * height}, or resize the image")
    if image.format == "JPEG":
        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
    try:
        image.load()
        rgb = to_rgb(image)
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(
            f"the image data is damaged or incomplete ({error}): copy the file again from the "
            "source or delete it"
        ) from error
    tables = getattr(image, "quantization", None) or {}
    quant = hashlib.sha1(b"".join(bytes(list(tables[k])) for k in sorted(tables))).hexdigest()[:8] \
        if tables else ""
    rgb = thumbnail(rgb)
    mean, std = colour_stats(rgb)
    return ImageFacts(sha1=hashlib.sha1(data).hexdigest(), width=width, height=height, mode=mode,
                      format=image.format or "", file_bytes=len(data), quant=quant,
                      dhash=difference_hash(rgb), mean=mean, std=std)


def thumbnail(rgb: Image.Image) -> Image.Image:
    """The image reduced to about 64-128 pixels a side (as it is when larger): what the colour
    statistics and the difference hash are computed on."""
    return rgb.reduce(max(rgb.size) // 64) if max(rgb.size) > 128 else rgb


def colour_stats(rgb: Image.Image) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, standard deviation) of each RGB channel of an RGB image, 0-1."""
    pixels = np.asarray(rgb, dtype=np.float32).reshape(-1, 3) / 255
    return (tuple(round(float(v), 4) for v in pixels.mean(0)),
            tuple(round(float(v), 4) for v in pixels.std(0)))


def difference_hash(image: Image.Image) -> str:
    """The 64-bit difference hash of an RGB image as 16 hex digits: on a 9x8 grey thumbnail, one
    bit per pixel for "brighter than its left neighbour"."""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """The image at `path` as a (height, width, 3) uint8 array."""
    with open(path, "rb") as handle:
        image = _open(handle.read())
    try:
        return np.asarray(to_rgb(image))
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(f"{path}: the image data is damaged or incomplete ({error})") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any supported mode to 8-bit RGB; 16-bit images are scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.int64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = np.clip(values, 0, 65535) >> 8
        gray = values.astype(np.uint8)
        return Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")
    if image.mode == "F" or image.mode not in _CONVERTED_MODES:
        raise UnreadableImage(
            f"mode {image.mode} is not supported: save the image as 8-bit RGB (PNG, TIFF or JPEG)"
        )
    return image.convert("RGB")


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():  # the size is checked by the caller, against its limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise UnreadableImage(f"{str(error).split(',')[0]} (a guard against decompression bombs): "
                              "if it is a real scan, pass --max-pixels with at least its size, or "
                              "resize the image") from error
    except UnidentifiedImageError as error:
        raise UnreadableImage(
            "not an image (no known image format in its bytes): delete the file, or replace it "
            "with the original image"
        ) from error
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(f"the image header is damaged ({error}): copy the file again or delete it") from error
