"""`raycells evaluate`: a run's trained models on another image folder, scored and reported like
a cross-validation run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..runs.evaluate import run_evaluate
from ..report.scoring import score_run
from ..report.writers import report_tables, write_report
from ..settings import Placement
from .common import LiveDisplay, console, load_dataset, reported_errors, status
from .report import print_tables


def evaluate(
    from_: Annotated[Path, typer.Option("--from", help="Run directory whose trained models predict (raycells cv or transfer).")],
    data: Annotated[Optional[Path], typer.Option(help="Image folder, CSV or manifest to evaluate on. Default: the built-in SYNTHETIC demo dataset.", show_default=False)] = None,
    fold: Annotated[Optional[int], typer.Option(help="Use this fold's model only (default: the mean of every finished fold's probabilities).", show_default=False)] = None,
    map_: Annotated[Optional[str], typer.Option("--map", help="Map the images' labels onto the network's classes: pbc-to-aml, or a .json/.csv (from,to) file. Images whose label does not map are left out and counted.", show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option(help='Ray cluster to join ("auto" on a cluster node) (default: start one here).', show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where the evaluation goes (default: runs/evaluate-<time>).", show_default=False)] = None,
) -> None:
    """Run trained models on new images: predictions, metrics and the report, as for a cv run."""
    with reported_errors():
        out = out or Path("runs") / f"evaluate-{dt.datetime.now():%Y%m%d-%H%M%S}"
        manifest = load_dataset(data)
        display = _Models()
        result = display.run(
            lambda: run_evaluate(out, from_, manifest, fold=fold, mapping=map_,
                                 placement=Placement(address=address), events=display.event),
            out, "Nothing was written; run the evaluation again.")
        if result.left_out:
            counts = ", ".join(f"{label} {n:,}" for label, n in result.left_out.items())
            status.print(f"Left out (no counterpart among the network's classes): {counts}.")
        scores = score_run(out)
        synthetic = manifest.synthetic
        written = write_report(scores, out / "report", synthetic=synthetic)
    print_tables(report_tables(scores, synthetic=synthetic))
    console.print(f"Evaluation of {from_} on {manifest.root} written to {out}; report: "
                  f"{', '.join(written)}")


class _Models(LiveDisplay):
    """Status lines: one per model as it predicts."""

    def _on_model(self, fold, done, total) -> None:
        if fold is not None:
            status.print(f"Predicting with fold {fold}'s model ({done + 1}/{total}).")
