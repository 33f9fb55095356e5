"""`raycells transfer`: a trained network adapted to a new dataset (new head with the body frozen,
then fine-tuning all but the batch-norm layers), cross-validated like `raycells cv`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from .common import check_chosen_on_other_images, reported_errors, settings_and_data, status
from .live import FoldsDisplay, print_folds
from .options import (
    TRACKED,
    TRAINING_SETTINGS,
    TRANSFER_PHASES,
    AllowOverlap,
    Config,
    GraceEpochs,
    Metric,
    Out,
    Resume,
    Samples,
    Search,
    SourceFold,
    SourceFrom,
    nested_search,
    takes_settings,
)

Best = Annotated[bool, typer.Option(
    "--best", help="Take the fold whose best epoch scored the highest inner-validation macro F1 "
                   "(the default).")]


@takes_settings(*(name for name in TRAINING_SETTINGS if name != "weights"), *TRANSFER_PHASES,
                *TRACKED)
def transfer(flags: dict[str, Any], from_: SourceFrom = None, fold: SourceFold = None,
             best: Best = False, search: Search = None, metric: Metric = "macro_f1",
             samples: Samples = 1, grace_epochs: GraceEpochs = None, config: Config = None,
             out: Out = None, resume: Resume = False, allow_overlap: AllowOverlap = False) -> None:
    """Adapt a trained network to another dataset: new head, then fine-tuning, with k-fold CV;
    with --search, transfer settings are chosen inside every fold (nested selection)."""
    from ..runs.setup import open_run
    from ..runs.source import choose_source, transfer_flags
    from ..runs.transfer import run_transfer
    from ..runs.tune import check_search

    with reported_errors():
        source = choose_source(from_, fold=fold, best=best, model=flags["model"], resume=resume)
        run = open_run(out, "transfer", resume=resume)
        if source is not None:
            status.print(f"Source network: {source.describe()}.")
        nested = nested_search(run, config, search, samples=samples, metric=metric,
                               grace_epochs=grace_epochs, resume=resume)
        experiment, placement, manifest = settings_and_data(
            run, transfer_flags(source, run.path, flags), preset="transfer", config=config,
            resume=resume, ignore=("space",))
        if nested:
            check_search(experiment, nested.space, samples=nested.samples, metric=nested.metric)
        if config and manifest is not None:
            check_chosen_on_other_images(config, manifest, allow_overlap)
        display, started = FoldsDisplay(), time.monotonic()
        result = display.run(
            lambda: run_transfer(run.path, experiment, placement, source=source,
                                 manifest=manifest, resume=resume, events=display.event,
                                 allow_overlap=allow_overlap, nested=nested),
            run.path, "Finished folds and checkpoints are kept: continue with "
                      f"`raycells transfer --resume --out {run.path}`.", command="transfer")
    print_folds(result, time.monotonic() - started)
