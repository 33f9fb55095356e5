"""`raycells explain`: class activation maps (Grad-CAM) of a run's networks on your images, as
PNG overlays and one HTML gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..data.images import MAX_PIXELS
from ..errors import RaycellsError
from ..files import check_writable
from .common import EXIT_UNREADABLE, console, print_problems, progress_bar, reported_errors
from .options import Fold, From, Images, MaxPixels

Target = Annotated[str | None, typer.Option(
    help="Draw every map for this class code (default: each image's predicted class).",
    show_default=False)]
ExplainOut = Annotated[Path, typer.Option("--out", help="Folder for overlays/ and gallery.html.")]


def explain(images: Images, from_: From, fold: Fold = None, target: Target = None,
            out: ExplainOut = Path("explained"), max_pixels: MaxPixels = MAX_PIXELS) -> None:
    """Where the networks look: a Grad-CAM map per image (for its predicted class, or --target),
    written as PNG overlays and one self-contained HTML gallery. Unreadable images are listed
    and skipped."""
    from ..data.index import index_images
    from ..use.explain import Explainer, write_overlays
    from ..use.gallery import Item, Section, write_gallery
    from ..use.networks import RunNetworks

    with reported_errors():
        check_writable(out, folder=True)  # before the work, not after it
        if (out / "gallery.html").exists():
            raise RaycellsError(f"{out / 'gallery.html'} exists: delete it or choose another --out.")
        networks = RunNetworks.of(from_, fold)
        if target is not None and target not in networks.classes:
            raise RaycellsError(f"--target {target}: not one of the network's classes "
                                f"({', '.join(networks.classes)}).")
        with progress_bar("Reading images") as update:
            manifest = index_images(images, progress=update, max_pixels=max_pixels)
        print_problems(manifest)
        paths = manifest.frame["path"].tolist()
        with progress_bar("Drawing class activation maps") as update:
            explained = Explainer.of(networks).explain(paths, [target] * len(paths), progress=update)
        written = write_overlays(explained, out / "overlays")
        names = networks.names
        items = [Item(e.picture, e.overlay, [f"{e.target} {names[e.target]}: {e.probability:.3f}",
                                             e.path]) for e in explained]
        gallery = write_gallery(
            out / "gallery.html", f"Class activation maps: {networks.run_dir}",
            [Section("", [("", items)])],
            note=f"Grad-CAM of {networks.model_name} (folds {', '.join(map(str, networks.folds))}, "
                 "maps averaged) for " + (f"class {target}" if target else "each image's predicted "
                 "class") + ": warm colours mark the regions whose features raised that class's "
                 "score. Left: the image as the network sees it (central square); right: the map.")
    console.print(f"Explained {len(explained):,} images: {len(written)} overlays in "
                  f"{out / 'overlays'}, gallery {gallery}")
    if manifest.unreadable:
        raise typer.Exit(EXIT_UNREADABLE)
