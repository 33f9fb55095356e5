"""`raycells predict`: a run's trained networks on your own images, no labels needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..data.images import MAX_PIXELS
from ..errors import RaycellsError
from ..settings import Placement
from .common import EXIT_UNREADABLE, console, print_problems, progress_bar, reported_errors, status
from .live import Predicting
from .options import Fold, From, Images, MaxPixels, Threshold, takes_settings

PredictOut = Annotated[Path, typer.Option(
    "--out", help="Folder for predictions.parquet and predictions.csv, or a file name ending in "
                  ".parquet or .csv (its twin is written beside it).")]


@takes_settings("tta", "allow_outside", "address")
def predict(flags: dict[str, Any], images: Images, from_: From, fold: Fold = None,
            out: PredictOut = Path("predictions"), threshold: Threshold = 0.5,
            max_pixels: MaxPixels = MAX_PIXELS) -> None:
    """Predict the class of every image with a run's networks (an ensemble of its folds by
    default): probabilities, top 3, how much the folds disagree, blast and atypical flags, and a
    flag for images unlike the training images. Unreadable images are listed and skipped."""
    from ..data.index import index_images
    from ..use.predict import predict_images, prediction_files, write_predictions

    with reported_errors():
        existing = [path for path in prediction_files(out) if path.exists()]
        if existing:
            raise RaycellsError(f"{existing[0]} exists: delete it, or choose another --out, so "
                                "that earlier predictions are not replaced.")
        with progress_bar("Reading images") as update:
            manifest = index_images(images, progress=update, max_pixels=max_pixels,
                                    allow_outside=bool(flags["allow_outside"]))
        print_problems(manifest)
        folder = prediction_files(out)[0].parent
        display = Predicting()
        result = display.run(
            lambda: predict_images(from_, manifest, fold=fold, tta=flags["tta"],
                                   threshold=threshold, placement=Placement(address=flags["address"]),
                                   events=display.event),
            folder, "Nothing was written; run the prediction again.", command="predict")
        written = write_predictions(result.table, out)
    table = result.table
    counts = table["predicted"].value_counts()
    console.print(f"Predicted {len(table):,} images with {len(result.networks.folds)} network(s) of "
                  f"{result.networks.run_dir} (folds {', '.join(map(str, result.networks.folds))}): "
                  + ", ".join(f"{code} {n:,}" for code, n in counts.items()), highlight=False)
    unusual = int((table["unusual"] != "").sum())
    if unusual:
        status.print(f"[yellow]warning:[/] {unusual:,} images are unlike the training images "
                     "(size or colours; see the unusual column): read their predictions with care.")
    console.print(f"Written: {', '.join(map(str, written))}")
    if manifest.unreadable:
        raise typer.Exit(EXIT_UNREADABLE)
