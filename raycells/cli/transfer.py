"""`raycells transfer`: a trained network adapted to a new dataset (new head with the body frozen,
then fine-tuning all but the batch-norm layers), cross-validated like `raycells cv`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ..runs.setup import open_run
from ..runs.source import choose_source, transfer_flags
from ..runs.transfer import run_transfer
from .common import reported_errors, settings_and_data, status
from .live import FoldsDisplay, print_folds
from .options import (
    TRACKED,
    TRAINING_SETTINGS,
    TRANSFER_PHASES,
    AllowOverlap,
    Config,
    Out,
    Resume,
    SourceFold,
    SourceFrom,
    takes_settings,
)

Best = Annotated[bool, typer.Option(
    "--best", help="Take the fold whose best epoch scored the highest inner-validation macro F1 "
                   "(the default).")]


@takes_settings(*(name for name in TRAINING_SETTINGS if name != "weights"), *TRANSFER_PHASES,
                *TRACKED)
def transfer(flags: dict[str, Any], from_: SourceFrom = None, fold: SourceFold = None, best: Best = False,
             config: Config = None, out: Out = None, resume: Resume = False,
             allow_overlap: AllowOverlap = False) -> None:
    """Adapt a trained network to another dataset: new head, then fine-tuning, with k-fold CV."""
    with reported_errors():
        source = choose_source(from_, fold=fold, best=best, model=flags["model"], resume=resume)
        run = open_run(out, "transfer", resume=resume)
        if source is not None:
            status.print(f"Source network: {source.describe()}.")
        experiment, placement, manifest = settings_and_data(
            run, transfer_flags(source, run.path, flags), preset="transfer", config=config,
            resume=resume)
        display, started = FoldsDisplay(), time.monotonic()
        result = display.run(
            lambda: run_transfer(run.path, experiment, placement, source=source,
                                 manifest=manifest, resume=resume, events=display.event,
                                 allow_overlap=allow_overlap),
            run.path, "Finished folds and checkpoints are kept: continue with "
                      f"`raycells transfer --resume --out {run.path}`.", command="transfer")
    print_folds(result, time.monotonic() - started)
