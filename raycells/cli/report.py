"""`raycells report`: the paper-style report of a run directory, with no retraining."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import RaycellsError
from .common import console, progress_bar, reported_errors, status
from .live import print_tables
from .options import Threshold

if TYPE_CHECKING:
    from ..runs.rundir import RunDir

RunDirs = Annotated[list[Path], typer.Argument(
    help="Run directories written by `raycells cv`; with several, each is compared with the first.")]


Examples = Annotated[int, typer.Option(
    min=0, help="Add report/examples.html: per class, this many correctly classified test images "
                "and this many of the most confident mistakes, each with its Grad-CAM map.")]


ReportMlflowUri = Annotated[str | None, typer.Option(
    "--mlflow-uri", help="Add the report to a run recorded on this MLflow server (the run's "
                         "tracking.json names it); without it, only a record inside the run "
                         "directory gets the report.", show_default=False)]


def report(run_dirs: RunDirs, threshold: Threshold = 0.5, examples: Examples = 0,
           mlflow_uri: ReportMlflowUri = None) -> None:
    """Tables and pictures like Matek et al. 2019 from a run directory (finished or not): per-class
    precision and sensitivity as mean ± std over folds, blast and atypical ROC AUC, confusion
    matrices, and the paper's table beside ours for the AML scheme."""
    from ..report.compare import compare
    from ..report.examples import write_examples
    from ..report.scoring import score_run
    from ..report.writers import comparison_tables, report_tables, write_comparison, write_report
    from ..runs.rundir import RunDir

    with reported_errors():
        runs = []
        for run_dir in run_dirs:
            scores = score_run(run_dir, threshold=threshold)
            data = RunDir(run_dir).read_config().get("data", {})
            facts = {"synthetic": bool(data.get("synthetic")), "warnings": data.get("warnings", [])}
            drawn = {}
            if examples:  # first, so that the report links them
                with progress_bar("Drawing the examples' class activation maps") as update:
                    path = write_examples(run_dir, examples, progress=update)
                drawn[path.name] = path
            written = {**write_report(scores, RunDir(run_dir).report, **facts), **drawn}
            runs.append(scores)
            if len(run_dirs) == 1:
                print_tables(report_tables(scores, **facts))
            console.print(f"Report of {run_dir} written to {RunDir(run_dir).report}: {', '.join(written)}")
            _track(RunDir(run_dir), mlflow_uri)
        if len(runs) > 1:
            comparisons = compare(runs)
            print_tables(comparison_tables(comparisons))
            written = write_comparison(comparisons, RunDir(run_dirs[0]).report)
            console.print(f"Comparison written to {RunDir(run_dirs[0]).report}: {', '.join(written)}")


def _track(run: RunDir, uri: str | None) -> None:
    """Add the report to the run's MLflow record, if it has one; a store that fails is a warning."""
    from ..runs.tracking import report_artifacts

    try:
        run_id = report_artifacts(run, run.report, uri)
    except RaycellsError as error:
        status.print(f"[yellow]note:[/] {error}", highlight=False)
        return
    except Exception as error:  # the report on disk is complete either way
        status.print(f"[yellow]warning:[/] could not add the report to the run's MLflow record "
                     f"({type(error).__name__}: {error}); the files in {run.report} are complete.",
                     highlight=False)
        return
    if run_id:
        console.print(f"Added to MLflow run {run_id} as artifacts under report/.")
