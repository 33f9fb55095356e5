"""Transfer learning: a network trained on one dataset adapted to another (`raycells transfer`).

The source network (`runs/source`) is copied into the new run directory as source.pt; the
training is `raycells cv`'s, in the two phases of `raycells.train.phases`.
"""

from __future__ import annotations

from pathlib import Path

from ..data.manifest import Manifest
from ..errors import RaycellsError
from ..settings import Experiment, Placement
from .cv import CvResult, run_cv
from .setup import Events, open_run
from .source import SOURCE_FILE, Source, keep_source
from .tune import SearchPlan


def run_transfer(out: str | Path, experiment: Experiment, placement: Placement, *,
                 source: Source | None = None, manifest: Manifest | None = None,
                 resume: bool = False, events: Events | None = None,
                 allow_overlap: bool = False, nested: SearchPlan | None = None,
                 only_folds: list[int] | None = None) -> CvResult:
    """Cross-validate `experiment` (with `source_settings`) from `source` into the run
    directory `out`; `resume` continues a transfer run, whose source.pt is already there;
    `nested` searches the transfer's settings inside every fold and `only_folds` trains only
    those (as `run_cv`). Images
    the source network trained on (by sha1) would be tested after training on them: refused
    unless `allow_overlap`, and then recorded as a warning."""
    if experiment.transfer is None:
        raise RaycellsError("a transfer run needs transfer settings: add source_settings(...).")
    run = open_run(out, "transfer", resume=resume)
    warnings = []
    if not resume:
        if source is None:
            raise RaycellsError("a new transfer run needs a source network: pass --from.")
        warnings = keep_source(run, source, manifest, allow_overlap=allow_overlap)
    elif not (run.path / SOURCE_FILE).is_file():
        raise RaycellsError(f"{run.path / SOURCE_FILE} is missing: it holds the source network's "
                            "weights. Start the transfer again in a new --out.")
    return run_cv(out, experiment, placement, manifest=manifest, resume=resume, events=events,
                  command="transfer", warnings=warnings, nested=nested, only_folds=only_folds,
                  extra={"preset": "transfer",
                         **({} if source is None else {"transfer_source": source.summary()})})
