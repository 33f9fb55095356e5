"""raycells tune: search spaces, and a small search on the demo data through Ray Tune."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from raycells.cli.tune import parse_space_flags
from raycells.data.demo import demo_dataset
from raycells.data.index import index_dataset
from raycells.errors import RaycellsError
from raycells.runs.cv import run_cv
from raycells.runs.tune import check_space, run_tune
from raycells.settings import Sampling, build_settings, with_overrides

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


def test_a_small_search_writes_best_json_that_cv_runs_from(ray_session, tmp_path):
    data = demo_dataset()
    experiment, placement = build_settings(flags={**SMALL, "data": str(data)})
    run = tmp_path / "tune"
    seen = []
    result = run_tune(run, experiment, placement,
                      {"sampling.policy": ["none", "oversample", "sqrt", "class-weighted"]},
                      manifest=index_dataset(data), grace_epochs=2,
                      events=lambda kind, **info: seen.append(kind))
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 4 and set(trials["sampling.policy"]) == {"none", "oversample", "sqrt",
                                                                  "class-weighted"}
    assert (trials["status"] == "complete").all() and trials["score"].between(0, 1).all()
    assert "trial_result" in seen

    # The score comes from the inner validation split: each trial's fold-0 checkpoint history
    # (validation metrics only) holds it, and no test fold was ever predicted.
    assert not list(run.rglob("predictions.parquet"))
    for trial in trials.itertuples():
        # The newest checkpoint: a trial stopped right after its last report keeps older ones too.
        newest = sorted((run / "tune" / trial.trial).rglob("state.pt"))[-1]
        state = torch.load(newest, weights_only=False)
        assert max(e["val_macro_f1"] for e in state["history"]) == pytest.approx(trial.score)
        # Checkpoints are written to the run directory itself (shared on a cluster), not to a
        # node-local staging folder that Tune copies back.
        reports = [json.loads(line) for line in
                   (run / "tune" / trial.trial / "result.json").read_text().splitlines()]
        assert all(r["checkpoint_path"].startswith(str(run.resolve() / "tune" / trial.trial))
                   for r in reports)

    best = json.loads((run / "best.json").read_text())
    assert best["best"]["sampling.policy"] == trials.iloc[0]["sampling.policy"]
    tuned, placement = build_settings(config_file=run / "best.json", flags={"epochs": 1, "folds": 2})
    assert tuned.sampling.policy == result.best["sampling.policy"]
    cv = run_cv(tmp_path / "cv", tuned, placement, manifest=index_dataset(data))
    assert sorted(cv.per_fold) == [0, 1]
