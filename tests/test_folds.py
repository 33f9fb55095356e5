import pandas as pd
import pytest

from raycells.data.folds import fold_parts, make_folds
from raycells.errors import RaycellsError


def _frame(counts, groups=False):
    rows = [(f"/{label}/{i}.png", label) for label, n in counts.items() for i in range(n)]
    frame = pd.DataFrame(rows, columns=["path", "label"])
    frame["group"] = [f"p{i // 3}" for i in range(len(frame))] if groups else None
    return frame


def test_folds_are_disjoint_cover_everything_and_keep_proportions(pbc_manifest):
    plan = make_folds(pbc_manifest.frame, folds=5, seed=0)
    assert len(plan) == len(pbc_manifest) and set(plan["fold"]) == set(range(5))
    assert plan["path"].is_unique
    per_fold = plan.groupby(["label", "fold"]).size().unstack()
    # Within one image per class and fold, but a pair of identical files moves as one.
    assert ((per_fold.max(axis=1) - per_fold.min(axis=1)) <= 2).all()


def test_inner_validation_lies_inside_the_training_part():
    plan = make_folds(_frame({"a": 50, "b": 20, "c": 7}), folds=5, seed=1)
    for k in range(5):
        parts = fold_parts(plan, k)
        assert not set(parts["train"]) & set(parts["val"])
        assert not (set(parts["train"]) | set(parts["val"])) & set(parts["test"])
        assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == len(plan)
        assert (plan.loc[parts["test"], "fold"] == k).all()
        assert 0.05 < len(parts["val"]) / (len(parts["train"]) + len(parts["val"])) < 0.2


def test_same_seed_same_plan_other_seed_other_plan():
    frame = _frame({"a": 40, "b": 30})
    assert make_folds(frame, folds=4, seed=7).equals(make_folds(frame, folds=4, seed=7))
    assert not make_folds(frame, folds=4, seed=7)["fold"].equals(make_folds(frame, folds=4, seed=8)["fold"])


def test_groups_never_straddle_folds():
    plan = make_folds(_frame({"a": 60, "b": 60}, groups=True), folds=3, seed=0)
    frame = _frame({"a": 60, "b": 60}, groups=True)
    merged = plan.merge(frame[["path", "group"]], on="path")
    assert (merged.groupby("group")["fold"].nunique() == 1).all()


def test_small_classes_are_an_error_naming_them_or_dropped_on_request():
    frame = _frame({"a": 30, "b": 3})
    with pytest.raises(RaycellsError, match=r"b \(3 images\).*--folds 3.*--drop-small-classes"):
        make_folds(frame, folds=5, seed=0)
    plan = make_folds(frame, folds=5, seed=0, drop_small=True)
    assert set(plan["label"]) == {"a"} and len(plan) == 30


def _parts_of(plan, k):
    """Each image's part of fold k: train, val or test."""
    part = pd.Series("train", index=plan.index)
    part[plan[f"val_{k}"]] = "val"
    part[plan["fold"] == k] = "test"
    return part


def test_byte_identical_images_never_straddle_two_parts_on_pbc(pbc_manifest):
    """PBC holds 5 pairs of identical files (one filed under eosinophil and neutrophil): each pair
    lies in one part of every fold, and the near-duplicate pair joins them when asked."""
    frame = pbc_manifest.frame
    for near in (False, True):
        plan = make_folds(frame, folds=5, seed=0, near_duplicates=near)
        merged = plan.merge(frame[["path", "sha1"]], on="path")
        shared = merged[merged["sha1"].duplicated(keep=False)]
        assert shared["sha1"].nunique() == 5
        for k in range(5):
            assert (_parts_of(plan, k)[shared.index].groupby(shared["sha1"]).nunique() == 1).all()
        monocytes = plan.set_index("path").loc[[p for p in plan["path"] if "MO_231316" in p or
                                                "MO_415531" in p]]
        if near:
            assert monocytes["fold"].nunique() == 1
            assert all(monocytes[f"val_{k}"].nunique() == 1 for k in range(5))


def test_patient_groups_and_identical_files_join_into_one_group():
    frame = _frame({"a": 60, "b": 60}, groups=True)
    frame["sha1"] = [f"s{i}" for i in range(len(frame))]
    frame.loc[[0, 100], "sha1"] = "same"  # patient p0 and patient p33 share a file
    plan = make_folds(frame, folds=3, seed=0)
    merged = plan.merge(frame[["path", "group"]], on="path")
    assert merged.loc[merged["group"].isin(["p0", "p33"]), "fold"].nunique() == 1
