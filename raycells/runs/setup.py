"""Setting up a run, the same way for every command: the run directory opened (new, or reopened
for --resume, with the refusals in one place), the settings resolved (a resumed run's own
config.json under the flags), and a new run's config.json, manifest.parquet and folds.parquet
written before any training; then Ray joined and the image cache built."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.cache import image_cache
from ..data.duplicates import MAX_NEAR_GROUP, exact_sets, near_groups, near_to
from ..data.extra import EXTRA_FOLD, load_mapping, mapped_extra, with_extra
from ..data.folds import copy_folds, fold_parts, make_folds, small_classes
from ..data.index import open_dataset
from ..data.manifest import Manifest, fingerprint, read_manifest, training_labels, write_manifest
from ..data.sampling import expected_copies
from ..data.shortcuts import check_shortcuts
from ..errors import RaycellsError
from ..files import check_writable
from ..settings import Experiment, Placement, as_dict, build_settings, differences, settings_from_dict
from ..train.job import step_batch
from ..train.models import create_model, load_weights, state_dict_in
from ..train.trainer import init_ray
from .rundir import RunDir, write_config, write_plan

Events = Callable[..., None]
"""Called as events(kind, **info) while a run goes on; the library never prints, the CLI renders
these. Every run sends prepared, cache and resources; each command adds its own."""


def no_events(kind: str, **info: Any) -> None:
    """The events of a caller that does not listen."""


def open_run(out: str | Path | None, command: str, *, resume: bool = False,
             resumable: bool = True) -> RunDir:
    """The run directory `out` (default: runs/<command>-<time>) for a new run, refused when it
    already holds one; with `resume`, the existing run in `out` to continue. `resumable` says
    whether the command can continue a run at all (for the wording of the refusal)."""
    if resume and out is None:
        raise RaycellsError("--resume needs --out: the run directory to continue.")
    run = RunDir(out or Path("runs") / f"{command}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    check_writable(run.path, folder=True)
    if resume and not run.config.is_file():
        raise RaycellsError(f"{run.path}: nothing to resume (no config.json). Start the run "
                            "without --resume.")
    if not resume and run.config.is_file():
        how = "pass --resume to continue it, or choose another --out" if resumable else (
            "choose another --out")
        raise RaycellsError(f"{run.path} already holds a run: {how}.")
    return run


def check_classes(labels: pd.Series, root: str, dropped: dict[str, int]) -> None:
    """Refuse to train a classifier on fewer than two classes: every score would be 1."""
    found = sorted(labels.unique())
    if len(found) < 2:
        why = (f" ({', '.join(dropped)} left out by --drop-small-classes: fewer images than "
               "folds)" if dropped else "")
        raise RaycellsError(f"{root}: {len(found)} class{'' if len(found) == 1 else 'es'} to train on"
                            f"{' (' + found[0] + ')' if found else ''}{why}: a classifier needs at "
                            "least two. Point --data at a folder with a subfolder per class, or "
                            "a CSV with a label column of two or more labels.")


def check_batches(experiment: Experiment, plan: pd.DataFrame) -> None:
    """Refuse a fold whose training part draws fewer images an epoch than one batch: with the
    last part batch dropped, every epoch would train no step, and the untrained network would be
    scored as if it were trained."""
    classes = sorted(plan["label"].unique())
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    batch = step_batch(experiment, 1)
    for fold in range(experiment.folds):
        counts = np.bincount(labels[fold_parts(plan, fold)["train"]], minlength=len(classes))
        drawn = int((counts * expected_copies(experiment.sampling, counts)).sum())
        if drawn < batch:
            raise RaycellsError(
                f"fold {fold}'s training part draws {drawn} images an epoch, fewer than one batch "
                f"of {batch} (--batch-size): no epoch would train a step, and the untrained "
                f"network would be scored. Lower --batch-size to {max(1, drawn // 2)} or so (at "
                "most the images an epoch draws), or give the run more images.")


def run_settings(run: RunDir, flags: dict[str, Any], *, preset: str | None = None,
                 config: str | Path | None = None, resume: bool = False,
                 ignore: tuple[str, ...] = ()) -> tuple[Experiment, Placement]:
    """The settings of a run: defaults, preset, `config` and `flags` (see `build_settings`); a
    resumed run starts from its own config.json instead of the defaults and preset."""
    base = config or (run.config if resume else None)
    return build_settings(preset=preset, config_file=base, flags=flags, ignore=ignore)


def prepare_run(run: RunDir, experiment: Experiment, placement: Placement,
                manifest: Manifest | None, resume: bool, *, command: str = "cv",
                extra: dict[str, Any] | None = None, resumable: bool = True,
                warnings: list[str] = ()) -> tuple[Manifest, pd.DataFrame]:
    """Start a run directory (config.json, manifest.parquet, folds.parquet), or reopen one for
    --resume after checking its settings (see `open_run` for the refusals); returns the manifest
    and the fold plan. `command` and `extra` go to a new run's config.json, with the data's
    warnings: the caller's `warnings`, label conflicts and the shortcut check's findings."""
    run = open_run(run.path, command, resume=resume, resumable=resumable)
    if resume:
        saved = run.read_config()
        old, _ = settings_from_dict({**saved["settings"]["experiment"]}, origin=str(run.config))
        changed = differences(old, experiment)
        if changed:
            raise RaycellsError(f"{run.path} was run with other settings ({'; '.join(changed)}). "
                                "Resume with the same settings, or choose another --out.")
        if experiment.weights:  # a file swapped in since (source.pt) is refused before Ray starts
            state_dict_in(experiment.weights)
        return read_manifest(run.manifest), run.read_plan()
    if manifest is None:
        raise RaycellsError("a new run needs a dataset: pass --data.")
    frame = training_labels(manifest.frame, experiment.labels, manifest.root)
    keep, conflicts = _label_conflicts(frame, experiment.drop_conflicts)
    warnings = [*warnings, *conflicts, *check_shortcuts(frame, seed=experiment.seed).warnings()]
    base, frame = manifest.frame[keep].reset_index(drop=True), frame[keep].reset_index(drop=True)
    dropped = small_classes(frame["label"], experiment.folds) if experiment.drop_small_classes else {}
    check_classes(frame["label"][~frame["label"].isin(dropped)], manifest.root, dropped)
    if experiment.folds_from:
        source = RunDir(experiment.folds_from)
        if not source.folds.is_file():
            raise RaycellsError(f"--folds-from {source.path}: no folds.parquet there; name a "
                                "raycells run directory.")
        plan = copy_folds(frame[~frame["label"].isin(dropped)], source.read_plan(),
                          folds=experiment.folds, origin=str(source.path))
    else:
        # Near pairs worked out once: for the folds and for the warning about oversized chains.
        near, unmerged = near_groups(frame) if experiment.group_near_duplicates else (None, [])
        plan = make_folds(frame if near is None else frame.assign(near_group=near),
                          folds=experiment.folds, seed=experiment.seed,
                          val_fraction=experiment.val_fraction,
                          drop_small=experiment.drop_small_classes,
                          near_duplicates=experiment.group_near_duplicates)
        if unmerged:
            warnings.append(
                    f"near-duplicates chain {len(unmerged)} group(s) of {', '.join(map(str, unmerged))} "
                    f"images, each over {MAX_NEAR_GROUP:.0%} of the data: not kept together (one "
                    "group would fill a test fold); `raycells data inspect` shows the pairs.")
    start = {}
    if experiment.weights:  # a file that is no fitting state dict is named before Ray starts
        network = create_model(experiment.model, plan["label"].nunique())
        new_head = load_weights(network, experiment.weights, head=experiment.transfer is None)
        start = {"weights": {"file": experiment.weights,
                             "head": "new" if new_head else "from the file"}}
    used = base[~frame["label"].isin(dropped)].reset_index(drop=True)
    extra_counts: dict[str, int] = {}
    if experiment.extra_data:
        added = mapped_extra(open_dataset(experiment.extra_data,
                                          allow_outside=experiment.allow_outside),
                             load_mapping(experiment.extra_map), set(plan["label"]))
        twins = near_to(added, used)
        if twins.any():
            warnings.append(
                f"{int(twins.sum())} of {len(added)} extra images (--extra-data "
                f"{experiment.extra_data}) are identical or near-identical to images of the run "
                "and were dropped: a copy trained on would sit beside its twin in a test fold.")
            added = added[~twins].reset_index(drop=True)
        plan = with_extra(plan, added, experiment.folds)
        used = pd.concat([used, added[used.columns]], ignore_index=True)
        extra_counts = {str(k): int(n) for k, n in sorted(added["label"].value_counts().items())}
    check_batches(experiment, plan)
    used_manifest = Manifest(frame=used, root=manifest.root, layout=manifest.layout,
                             source=manifest.source, synthetic=manifest.synthetic,
                             skipped=manifest.skipped, unreadable=manifest.unreadable,
                             warnings=manifest.warnings)
    run.path.mkdir(parents=True, exist_ok=True)
    write_config(run, {
        "command": command,
        **(extra or {}),
        **start,
        "seed": experiment.seed,
        "settings": {"experiment": as_dict(experiment), "placement": as_dict(placement)},
        "data": {"root": manifest.root, "layout": manifest.layout, "source": manifest.source,
                 "synthetic": manifest.synthetic, "labels": experiment.labels,
                 "images": len(used) - sum(extra_counts.values()),
                 "fingerprint": fingerprint(used["sha1"]),
                 "classes": sorted(plan["label"].unique()), "dropped_classes": dropped,
                 "extra_training_images": extra_counts, "warnings": warnings},
    })
    write_manifest(used_manifest, run.manifest)
    write_plan(plan, run.folds)
    return used_manifest, plan


def start_run(run: RunDir, manifest: Manifest, plan: pd.DataFrame, experiment: Experiment,
              placement: Placement, emit: Events) -> tuple[list[str], Path]:
    """Announce a prepared run, join Ray and build (or reuse) the decoded-image cache; returns
    the classes and the cache folder."""
    classes = sorted(plan["label"].unique())
    extra = plan.loc[plan["fold"] == EXTRA_FOLD, "label"].value_counts()
    config = run.read_config()
    emit("prepared", run_dir=str(run.path), images=int((plan["fold"] != EXTRA_FOLD).sum()),
         classes=classes, synthetic=manifest.synthetic, source=manifest.source,
         extra={str(k): int(n) for k, n in sorted(extra.items())},
         warnings=config["data"].get("warnings", []), weights=config.get("weights"))
    init_ray(placement)
    cache = image_cache(manifest.frame, experiment.image_size,
                        progress=lambda done, total: emit("cache", done=done, total=total))
    return classes, cache


def _label_conflicts(frame: pd.DataFrame, drop: bool) -> tuple[np.ndarray, list[str]]:
    """Which images of `frame` a run keeps (all, or all but the label conflicts with `drop`) and
    the warning to record about the conflicts."""
    conflicts = exact_sets(frame)
    conflicts = [found for found in conflicts if found.conflicting]
    if not conflicts:
        return np.ones(len(frame), dtype=bool), []
    paths = {path for found in conflicts for path in found.paths}
    example = " = ".join(f"{path} ({label})" for path, label in zip(conflicts[0].paths,
                                                                    conflicts[0].labels))
    if drop:
        return (~frame["path"].isin(paths)).to_numpy(), [
            f"left out {len(paths)} images that are label conflicts (byte-identical copies filed "
            f"under different labels; --drop-conflicts), such as {example}."]
    sets = f"{len(conflicts)} {'set' if len(conflicts) == 1 else 'sets'}"
    return np.ones(len(frame), dtype=bool), [
        f"byte-identical images filed under different labels (label conflicts): {sets}, such as "
        f"{example}. Each set stays in one fold; --drop-conflicts leaves them out."]
