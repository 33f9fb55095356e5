"""raycells tune: search spaces and overrides."""

from __future__ import annotations

import pytest

from raycells.cli.tune import parse_space_flags
from raycells.errors import RaycellsError
from raycells.sampling import Sampling
from raycells.settings import build_settings
from raycells.tune import check_space, with_overrides

SMALL = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "epochs": 2, "folds": 3}


def test_space_flags_become_grids_and_ranges():
    space = parse_space_flags(["sampling.policy=none|oversample", "lr=loguniform(0.0001,0.01)",
                               "sampling.target=100|null"])
    assert space == {"sampling.policy": ["none", "oversample"],
                     "lr": {"loguniform": [0.0001, 0.01]}, "sampling.target": [100, None]}
    with pytest.raises(RaycellsError, match="expected key=a"):
        parse_space_flags(["lr"])


def test_overrides_reach_nested_settings_and_bad_ones_are_named():
    base, _ = build_settings(flags=SMALL)
    tuned = with_overrides(base, {"sampling.policy": "oversample", "sampling.cap": 3, "lr": 0.1})
    assert tuned.sampling == Sampling("oversample", cap=3) and tuned.lr == 0.1
    for space, message in (({"sampling.polcy": ["none"]}, "no such setting"),
                           ({"lr.max": [1]}, "lr has no settings inside it"),
                           ({"sampling.policy": ["none", "smote"]}, "'smote' is not valid"),
                           ({"lr": {"loguniform": [0.1, 0.01]}}, "low < high"),
                           ({"lr": {"normal": [0, 1]}}, "a range is one of"),
                           ({}, "the search space is empty")):
        with pytest.raises(RaycellsError, match=message):
            check_space(base, space)
