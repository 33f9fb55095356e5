"""`raycells cv`: stratified k-fold cross-validation on Ray, with a live display and a final table
of mean ± std over folds."""

from __future__ import annotations

import time
from typing import Any

from ..errors import RaycellsError
from ..runs.cv import run_cv
from ..runs.setup import open_run
from ..runs.tune import SearchPlan, check_search, search_overlap
from .common import reported_errors, settings_and_data, status
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
    search_space,
    takes_settings,
)


@takes_settings(*TRAINING_SETTINGS, *TRACKED)
def cv(flags: dict[str, Any], search: Search = None, metric: Metric = "macro_f1",
       samples: Samples = 1, grace_epochs: GraceEpochs = None, preset: Preset = None,
       config: Config = None, out: Out = None, resume: Resume = False,
       allow_overlap: AllowOverlap = False) -> None:
    """Cross-validate a classifier: stratified k folds, trained on Ray, evaluated like the paper;
    with --search, settings are chosen inside every fold (nested selection)."""
    with reported_errors():
        run = open_run(out, "cv", resume=resume)
        space = (run.read_config().get("search") or {}).get("space", {}) if resume else (
            search_space(config, search))
        nested = SearchPlan(space, samples, metric, grace_epochs) if space else None
        experiment, placement, manifest = settings_and_data(run, flags, preset=preset,
                                                            config=config, resume=resume,
                                                            ignore=("space",))
        if nested:
            check_search(experiment, nested.space, samples=samples, metric=metric)
        if config and manifest is not None:
            _check_overlap(config, manifest, allow_overlap)
        display, started = FoldsDisplay(), time.monotonic()
        result = display.run(
            lambda: run_cv(run.path, experiment, placement, manifest=manifest, resume=resume,
                           events=display.event, nested=nested),
            run.path, "Finished folds and checkpoints are kept: continue with "
                      f"`raycells cv --resume --out {run.path}`.", command="cv")
    print_folds(result, time.monotonic() - started)


def _check_overlap(config, manifest, allow: bool) -> None:
    """Refuse (or with --allow-overlap, warn) when settings chosen by `raycells tune` would be
    tested on images the search used to choose them."""
    found = search_overlap(config, manifest.frame)
    if not found or not found[0]:
        return
    count, search_run = found
    text = (f"{count:,} of this run's {len(manifest.frame):,} images were used by the search "
            f"in {search_run} that chose the settings in {config}; their test scores would "
            "report the winner on images that chose it.")
    if not allow:
        raise RaycellsError(f"{text} Use `raycells cv --search ...` for nested selection (a "
                            "search inside every fold), tune on other images, or pass "
                            "--allow-overlap to go on knowing the scores are optimistic.")
    status.print(f"[yellow]warning:[/] {text} (--allow-overlap)", highlight=False)
