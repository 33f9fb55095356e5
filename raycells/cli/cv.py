"""`raycells cv`: stratified k-fold cross-validation on Ray, with a live display and a final table
of mean ± std over folds."""

from __future__ import annotations

import time
from typing import Any

from .common import check_chosen_on_other_images, chosen_preset, reported_errors, settings_and_data
from .live import FoldsDisplay, print_folds
from .options import (
    TRACKED,
    TRAINING_SETTINGS,
    AllowOverlap,
    Config,
    GraceEpochs,
    Metric,
    Out,
    Preset,
    Resume,
    Samples,
    Search,
    nested_search,
    takes_settings,
)


@takes_settings(*TRAINING_SETTINGS, *TRACKED)
def cv(flags: dict[str, Any], search: Search = None, metric: Metric = "macro_f1",
       samples: Samples = 1, grace_epochs: GraceEpochs = None, preset: Preset = None,
       config: Config = None, out: Out = None, resume: Resume = False,
       allow_overlap: AllowOverlap = False) -> None:
    """Cross-validate a classifier: stratified k folds, trained on Ray, evaluated like the paper;
    with --search, settings are chosen inside every fold (nested selection)."""
    from ..runs.cv import run_cv
    from ..runs.setup import open_run
    from ..runs.tune import check_search

    with reported_errors():
        run = open_run(out, "cv", resume=resume)
        nested = nested_search(run, config, search, samples=samples, metric=metric,
                               grace_epochs=grace_epochs, resume=resume)
        experiment, placement, manifest = settings_and_data(run, flags, preset=preset,
                                                            config=config, resume=resume,
                                                            ignore=("space",))
        started_from = chosen_preset(preset, config, flags)
        if nested:
            check_search(experiment, nested.space, samples=nested.samples, metric=nested.metric)
        if config and manifest is not None:
            check_chosen_on_other_images(config, manifest, allow_overlap)
        display, started = FoldsDisplay(), time.monotonic()
        result = display.run(
            lambda: run_cv(run.path, experiment, placement, manifest=manifest, resume=resume,
                           events=display.event, nested=nested, extra={"preset": started_from}),
            run.path, "Finished folds and checkpoints are kept: continue with "
                      f"`raycells cv --resume --out {run.path}`.", command="cv")
    print_folds(result, time.monotonic() - started)
