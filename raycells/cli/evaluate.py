"""`raycells evaluate`: a run's trained models on another image folder, scored and reported like
a cross-validation run."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..settings import Placement
from .common import console, load_dataset, reported_errors, status
from .live import Predicting, print_tables
from .options import AllowOverlap, Fold, From, Out, takes_settings

Map = Annotated[str | None, typer.Option(
    "--map", help="Map the images' labels onto the network's classes: pbc-to-aml, aml-to-pbc (onto "
                  "PBC's fine labels), or a .json/.csv "
                  "(from,to) file. Images whose label does not map are left out and counted.",
    show_default=False)]


@takes_settings("data", "allow_outside", "address")
def evaluate(flags: dict[str, Any], from_: From, fold: Fold = None, map_: Map = None,
             out: Out = None, allow_overlap: AllowOverlap = False) -> None:
    """Run trained models on new images: predictions, metrics and the report, as for a cv run."""
    from ..report.scoring import score_run
    from ..report.writers import report_tables, write_report
    from ..runs.evaluate import run_evaluate
    from ..runs.setup import open_run

    with reported_errors():
        run = open_run(out, "evaluate", resumable=False)
        manifest = load_dataset(flags["data"], allow_outside=bool(flags["allow_outside"]))
        display = Predicting()
        result = display.run(
            lambda: run_evaluate(run.path, from_, manifest, fold=fold, mapping=map_,
                                 placement=Placement(address=flags["address"]),
                                 events=display.event, allow_overlap=allow_overlap),
            run.path, "Nothing was written; run the evaluation again.", command="evaluate")
        if result.left_out:
            counts = ", ".join(f"{label} {n:,}" for label, n in result.left_out.items())
            status.print(f"Left out (no counterpart among the network's classes): {counts}.")
        scores = score_run(run.path)
        facts = {"synthetic": manifest.synthetic,
                 "warnings": run.read_config()["data"].get("warnings", [])}
        written = write_report(scores, run.report, **facts)
    print_tables(report_tables(scores, **facts))
    console.print(f"Evaluation of {from_} on {manifest.root} written to {run.path}; report: "
                  f"{', '.join(written)}")
