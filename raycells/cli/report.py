"""`raycells report`: the paper-style report of a run directory, with no retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from ..report import score_run
from ..report_files import report_tables, write_report
from ..rundir import RunDir
from .common import console, reported_errors


def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `raycells cv`.")],
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Probability threshold for the blast and atypical sensitivity and specificity.")] = 0.5,
) -> None:
    """Tables and pictures like Matek et al. 2019 from a run directory (finished or not): per-class
    precision and sensitivity as mean ± std over folds, blast and atypical ROC AUC, confusion
    matrices, and the paper's table beside ours for the AML scheme."""
    with reported_errors():
        scores = score_run(run_dir, threshold=threshold)
        synthetic = bool(RunDir(run_dir).read_config().get("data", {}).get("synthetic"))
        written = write_report(scores, RunDir(run_dir).report, synthetic=synthetic)
    for table in report_tables(scores, synthetic=synthetic):
        rich_table = RichTable(title=table.title, title_justify="left", caption=table.note or None,
                               caption_justify="left")
        for index, header in enumerate(table.headers):
            rich_table.add_column(header, justify="left" if index == 0 else "right")
        for row in table.rows:
            rich_table.add_row(*row)
        console.print(rich_table)
    console.print(f"Report written to {RunDir(run_dir).report}: {', '.join(written)}")
