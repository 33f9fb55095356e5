"""`raycells export`: a run's networks as an ONNX, TorchScript or safetensors file with its model
card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..files import check_writable
from ..settings import EXPORT_FORMATS
from .common import console, reported_errors, status
from .options import Fold, From, takes_settings

Format = Annotated[str, typer.Option(
    "--format", help=f"What to write: {', '.join(EXPORT_FORMATS)} (onnx and torchscript hold the whole "
                     "graph, normalisation and ensemble included; safetensors the weights).")]
ExportOut = Annotated[Path, typer.Option("--out", help="Folder for the model file and model.json.")]


@takes_settings("tta")
def export(flags: dict[str, Any], from_: From, fold: Fold = None, format_: Format = "onnx",
           out: ExportOut = Path("exported")) -> None:
    """Export a run's networks (an ensemble of its folds by default) for use outside raycells,
    checked against PyTorch on images of the run, with a model card (model.json: classes,
    input size, preprocessing, training data and licences, fold metrics)."""
    from ..use.export import CARD, export_run

    with reported_errors():
        check_writable(out, folder=True)  # before the work, not after it
    with reported_errors(), status.status(f"Exporting {from_} as {format_} (and checking it)"):
        written = export_run(from_, out, format_, fold=fold, tta=flags["tta"])
    card = json.loads(next(path for path in written if path.name == CARD).read_text())
    console.print(f"Exported {card['architecture']} (folds {', '.join(map(str, card['folds']))}, "
                  f"{len(card['classes'])} classes, {card['input']['shape'][2]}px input) as "
                  f"{format_}; largest difference from PyTorch on {card['check']['images']} images "
                  f"of the run: {card['check']['max_abs_difference']:.1e}.", highlight=False)
    console.print(f"Written: {', '.join(map(str, written))}")
