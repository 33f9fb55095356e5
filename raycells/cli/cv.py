"""`raycells cv`: stratified k-fold cross-validation on Ray, with a live display and a final table
of mean ± std over folds."""

from __future__ import annotations

from typing import Any

from ..runs.cv import run_cv
from ..runs.setup import open_run
from .common import reported_errors, settings_and_data
from .live import FoldsDisplay, print_folds
from .options import TRAINING_SETTINGS, Config, Out, Preset, Resume, takes_settings


@takes_settings(*TRAINING_SETTINGS)
def cv(flags: dict[str, Any], preset: Preset = None, config: Config = None, out: Out = None,
       resume: Resume = False) -> None:
    """Cross-validate a classifier: stratified k folds, trained on Ray, evaluated like the paper."""
    with reported_errors():
        run = open_run(out, "cv", resume=resume)
        experiment, placement, manifest = settings_and_data(run, flags, preset=preset,
                                                            config=config, resume=resume)
        display = FoldsDisplay()
        result = display.run(
            lambda: run_cv(run.path, experiment, placement, manifest=manifest, resume=resume,
                           events=display.event),
            run.path, "Finished folds and checkpoints are kept: continue with "
                      f"`raycells cv --resume --out {run.path}`.")
    print_folds(result)
