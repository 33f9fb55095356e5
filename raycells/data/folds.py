"""The fold plan: stratified k-fold test folds, and inside each training part a stratified inner
validation split that picks the best epoch. Seeded, and written once to folds.parquet so that every
later step (and a resumed run) uses the same plan. Images of one group (a patient or slide from a
CSV, byte-identical copies, and near-duplicates when asked: `raycells.data.duplicates`) always
fall in the same part.

Columns of the plan: path, label, fold (the test fold the image belongs to) and val_<k> (True when
the image is in the inner validation split of fold k's training part).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..errors import RaycellsError
from .duplicates import image_groups


def small_classes(labels: pd.Series, folds: int) -> dict[str, int]:
    """Classes with fewer images than folds (they cannot appear in every test fold)."""
    counts = labels.value_counts()
    return {str(label): int(n) for label, n in sorted(counts.items()) if n < folds}


def make_folds(frame: pd.DataFrame, *, folds: int, seed: int, val_fraction: float = 0.1,
               drop_small: bool = False, near_duplicates: bool = False) -> pd.DataFrame:
    """The fold plan for the images in `frame` (a manifest frame). Uses StratifiedGroupKFold when
    some images form groups (see the module's docstring; `near_duplicates` adds near-duplicate
    pictures), StratifiedKFold otherwise. Classes smaller than `folds` are an error, or left out
    with `drop_small`."""
    small = small_classes(frame["label"], folds)
    if small and not drop_small:
        listed = ", ".join(f"{label} ({n} images)" for label, n in small.items())
        fewest = min(small.values())
        fix = f"use --folds {fewest}, or " if fewest >= 2 else ""
        raise RaycellsError(f"classes smaller than the {folds} folds: {listed}. Each class needs at "
                            f"least one image per test fold: {fix}pass --drop-small-classes to leave "
                            "them out.")
    kept = frame.loc[~frame["label"].isin(small)]
    plan = kept[["path", "label"]].reset_index(drop=True)
    groups = image_groups(kept, near=near_duplicates)
    patients = "group" in kept and kept["group"].astype("string").fillna("").ne("").any()
    labels = plan["label"].to_numpy()
    if groups is not None:
        _check_groups_per_class(labels, groups, folds, patients)
    plan["fold"] = -1
    for k, test in enumerate(_test_parts(folds, seed, labels, groups, patients)):
        plan.loc[test, "fold"] = k
    for k in range(folds):
        training = np.flatnonzero(plan["fold"].to_numpy() != k)
        val = inner_validation(labels[training], None if groups is None else groups[training],
                               fraction=val_fraction, seed=seed + k, patients=patients)
        plan[f"val_{k}"] = False
        plan.loc[training[val], f"val_{k}"] = True
    return plan


def copy_folds(frame: pd.DataFrame, other: pd.DataFrame, *, folds: int, origin: str) -> pd.DataFrame:
    """The fold plan for `frame` taken from another run's plan `other` (same images, by path):
    the same test folds and inner validation splits, in `frame`'s row order and with its labels."""
    other = other[other["fold"] >= 0]  # extra training images belong to that run only
    other_folds = int(other["fold"].max()) + 1
    if other_folds != folds:
        raise RaycellsError(f"{origin} has {other_folds} folds: pass --folds {other_folds} to use "
                            "its fold plan.")
    here, there = set(frame["path"]), set(other["path"])
    if here != there:
        only_here, only_there = sorted(here - there), sorted(there - here)
        parts = [f"{len(paths)} only {where} (such as {paths[0]})" for paths, where in
                 ((only_here, "in this dataset"), (only_there, f"in {origin}")) if paths]
        raise RaycellsError(f"the fold plan of {origin} is for other images: {'; '.join(parts)}. "
                            "Both runs need the same dataset (and the same --drop-small-classes).")
    return frame[["path", "label"]].reset_index(drop=True).merge(
        other.drop(columns="label"), on="path", how="left", validate="one_to_one")


def _check_groups_per_class(labels: np.ndarray, groups: np.ndarray, folds: int,
                            patients: bool) -> None:
    """Refuse a class with fewer groups than folds: its groups cannot give every test fold one
    (scikit-learn's splitter stops with a ValueError)."""
    short = {}
    for label in np.unique(labels):
        mine = labels == label
        distinct = len(np.unique(groups[mine]))
        if distinct < folds:
            short[str(label)] = (int(mine.sum()), distinct)
    if not short:
        return
    what = "patients or slides (the CSV's group column)" if patients else "different pictures"
    listed = ", ".join(f"{label} ({n} images, {d} {what})" for label, (n, d) in short.items())
    fewest = min(d for _, d in short.values())
    raise RaycellsError(
        f"classes with fewer {what} than the {folds} folds: {listed}. Images of one picture (or "
        f"group) always share a fold, so each class needs one per test fold: "
        + (f"use --folds {fewest}, " if fewest >= 2 else "")
        + "add images, or remove the copies (`raycells data inspect` lists them).")


def inner_validation(labels: np.ndarray, groups: np.ndarray | None, *, fraction: float,
                     seed: int, patients: bool = False) -> np.ndarray:
    """Positions (into `labels`) of a stratified validation split of about `fraction` (more on
    tiny datasets, where no class has 1/fraction images), whole groups only."""
    if groups is None:
        largest = int(np.unique(labels, return_counts=True)[1].max())
    else:  # groups are split whole: count them, not images
        largest = max(len(np.unique(groups[labels == label])) for label in np.unique(labels))
    splits = max(2, min(round(1 / fraction), largest))
    return np.sort(next(_test_parts(splits, seed, labels, groups, patients)))


def fold_parts(plan: pd.DataFrame, fold: int) -> dict[str, np.ndarray]:
    """Row positions of fold `fold`'s train, validation and test parts."""
    test = plan["fold"].to_numpy() == fold
    val = plan[f"val_{fold}"].to_numpy()
    return {"train": np.flatnonzero(~test & ~val), "val": np.flatnonzero(val),
            "test": np.flatnonzero(test)}


def _test_parts(splits: int, seed: int, labels: np.ndarray, groups: np.ndarray | None,
                patients: bool):
    """The test positions of each of `splits` stratified splits, whole groups only. Patient or
    slide groups (large, mixed classes) need StratifiedGroupKFold; groups of duplicates (a few
    images of one picture) are split as one image each, by their first image's label, with
    StratifiedKFold, which is as well stratified and far faster on thousands of groups."""
    with warnings.catch_warnings():
        # Classes smaller than `splits` simply miss from some splits; that is expected.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if groups is None:
            splitter = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
            yield from (test for _, test in splitter.split(labels, labels))
        elif patients:
            splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
            yield from (test for _, test in splitter.split(labels, labels, groups))
        else:
            _, first = np.unique(groups, return_index=True)
            splitter = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
            for _, test in splitter.split(first, labels[first]):
                yield np.flatnonzero(np.isin(groups, groups[first[test]]))
