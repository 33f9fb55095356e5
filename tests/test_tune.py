"""raycells tune: search spaces, and small searches on real PBC images through Ray Tune."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from raycells.cli.options import parse_space
from raycells.data.manifest import read_manifest
from raycells.errors import RaycellsError
from raycells.runs.cv import run_cv
from raycells.runs.rundir import RunDir
from raycells.runs.setup import prepare_run
from raycells.runs.tune import SearchPlan, check_space, run_tune, search_overlap
from raycells.settings import Sampling, build_settings, with_overrides

SMALL = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "epochs": 2, "folds": 3}


def test_space_flags_become_grids_and_ranges():
    space = parse_space(["sampling.policy=none|oversample", "lr=loguniform(0.0001,0.01)",
                               "sampling.target=100|null"])
    assert space == {"sampling.policy": ["none", "oversample"],
                     "lr": {"loguniform": [0.0001, 0.01]}, "sampling.target": [100, None]}
    with pytest.raises(RaycellsError, match="expected key=a"):
        parse_space(["lr"])


def test_overrides_reach_nested_settings_and_bad_ones_are_named():
    base, _ = build_settings(preset="cpu", flags=SMALL)  # no sampling target of its own
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


def test_a_small_search_writes_best_json_that_cv_runs_from(ray_session, small_pbc, tmp_path):
    data = small_pbc
    manifest = read_manifest(data)
    experiment, placement = build_settings(flags={**SMALL, "data": str(data)})
    run = tmp_path / "tune"
    seen = []
    result = run_tune(run, experiment, placement,
                      {"sampling.policy": ["oversample", "class-weighted"]},
                      manifest=manifest, grace_epochs=2,
                      events=lambda kind, **info: seen.append(kind))
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 2 and set(trials["sampling.policy"]) == {"oversample", "class-weighted"}
    assert (trials["status"] == "complete").all() and trials["score"].between(0, 1).all()
    assert "trial_result" in seen

    # The score comes from the inner validation split: each trial's fold-0 checkpoint history
    # (validation metrics only) holds it, and no test fold was ever predicted.
    assert not list(run.rglob("predictions.parquet"))
    for trial in trials.itertuples():
        # The newest checkpoint: a trial stopped right after its last report keeps older ones too.
        newest = sorted((run / "tune" / trial.trial).rglob("state.pt"))[-1]
        state = torch.load(newest, weights_only=True)
        assert max(e["val_macro_f1"] for e in state["history"]) == pytest.approx(trial.score)
        # Checkpoints are written to the run directory itself (shared on a cluster), not to a
        # node-local staging folder that Tune copies back.
        reports = [json.loads(line) for line in
                   (run / "tune" / trial.trial / "result.json").read_text().splitlines()]
        assert all(r["checkpoint_path"].startswith(str(run.resolve() / "tune" / trial.trial))
                   for r in reports)

    best = json.loads((run / "best.json").read_text())
    assert best["best"]["sampling.policy"] == trials.iloc[0]["sampling.policy"]
    # best.json says which images chose the winner; a cross-validation on them is caught.
    plan = pd.read_parquet(run / "folds.parquet")
    assert best["search_images"]["images"] == int((plan["fold"] != 0).sum())
    assert search_overlap(run / "best.json", manifest.frame) == (
        best["search_images"]["images"], str(run.resolve()))
    # cv starts from best.json: its run directory records the winner's settings (the trials
    # trained with them already; every cv test trains a fold).
    tuned, placement = build_settings(config_file=run / "best.json", flags={"epochs": 1, "folds": 2})
    assert tuned.sampling.policy == result.best["sampling.policy"]
    prepare_run(RunDir(tmp_path / "cv"), tuned, placement, manifest, resume=False)
    recorded = json.loads((tmp_path / "cv" / "config.json").read_text())["settings"]["experiment"]
    assert recorded["sampling"]["policy"] == result.best["sampling.policy"]


def test_nested_selection_searches_inside_each_fold_and_tests_the_winner_once(ray_session,
                                                                               small_pbc, tmp_path):
    """cv --search: an outer fold's search trains and scores trials on that fold's training part
    only, its winner is trained again with the chosen settings and tested once; the run directory
    and the report say what the fold chose. (One fold of two, to keep the suite short.)"""
    from raycells.report.scoring import score_run
    from raycells.report.writers import report_tables

    experiment, placement = build_settings(flags={**SMALL, "epochs": 1, "folds": 2,
                                                  "data": str(small_pbc)})
    run = tmp_path / "nested"
    seen = []
    result = run_cv(run, experiment, placement, manifest=read_manifest(small_pbc),
                    nested=SearchPlan({"sampling.policy": ["none", "oversample"]}, grace_epochs=1),
                    events=lambda kind, **info: seen.append(kind), only_folds=[1])
    assert seen.count("search_started") == 1 and seen.count("search_finished") == 1
    assert not (run / "fold-0").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["search"]["space"] == {"sampling.policy": ["none", "oversample"]}
    for k in (1,):
        search = run / f"fold-{k}" / "search"
        chosen = json.loads((search / "chosen.json").read_text())["chosen"]
        trials = pd.read_csv(search / "trials.csv")
        assert set(trials["sampling.policy"]) == {"none", "oversample"}
        assert chosen["sampling.policy"] == trials.iloc[0]["sampling.policy"]
        assert not list(search.rglob("predictions.parquet"))  # the search never saw the test fold
        assert not list(search.rglob("test-*.npz"))  # its trials' workers were given no test part
        assert not list((run / f"fold-{k}" / "checkpoint").glob("test-*.npz"))  # read, then removed
        final = torch.load(sorted((run / f"fold-{k}" / "checkpoint").rglob("state.pt"))[-1],
                           weights_only=True)
        assert final["experiment"]["sampling"]["policy"] == chosen["sampling.policy"]
        assert result.per_fold[k]["chosen"] == chosen
    tables = {t.title: t for t in report_tables(score_run(run))}
    assert [row[0] for row in tables["Settings chosen in each fold"].rows] == ["1"]
    assert tables["Settings chosen in each fold"].rows[0][1].startswith("sampling.policy=")


def test_a_transfers_fine_tuning_is_named_either_way_and_asha_waits_for_it():
    """In a transfer, `transfer.lr` and `transfer.epochs` are the fine-tuning phase's `lr` and
    `epochs`; ASHA's grace period lets every trial reach the middle of its fine-tuning (the
    trials are alike before it), its last rung is the longest trial's end."""
    from raycells.runs.tune import _rungs
    from raycells.settings import Transfer

    plain, _ = build_settings(preset="cpu", flags=SMALL)
    assert _rungs(plain, {"lr": [0.1, 0.2]}) == (2, 1)
    assert _rungs(plain, {"epochs": [2, 6]}) == (6, 3)
    base, _ = build_settings(preset="transfer", flags={
        **SMALL, "epochs": 10, "weights": "source.pt",
        "transfer": {"source": "a run", "head_epochs": 4}})
    assert base.transfer == Transfer("a run", head_epochs=4)
    tuned = with_overrides(base, {"transfer.lr": 0.001, "transfer.epochs": 3})
    assert (tuned.lr, tuned.epochs) == (0.001, 3)
    assert _rungs(base, {"transfer.lr": {"loguniform": [1e-5, 1e-3]}}) == (14, 9)
    assert _rungs(base, {"transfer.epochs": {"randint": [2, 8]},
                         "transfer.head_epochs": [1, 6]}) == (14, 10)
    with pytest.raises(RaycellsError, match="transfer.lr and lr are the same setting"):
        check_space(base, {"transfer.lr": [0.1], "lr": [0.2]})
    with pytest.raises(RaycellsError, match="only a transfer has a fine-tuning phase"):
        with_overrides(plain, {"transfer.epochs": 3})


def test_trials_are_scored_at_the_epoch_their_run_would_keep():
    """A preset that keeps the last epoch (paper) tests the last epoch's network: a trial that
    peaked early and then fell is scored where it ends, not at its peak."""
    from raycells.runs.tune import kept_scores

    history = pd.DataFrame({
        "fold": [0, 0, 0, 1, 1, 1], "epoch": [1, 2, 3, 1, 2, 3],
        "val_macro_f1": [0.9, 0.5, 0.4, 0.6, 0.6, 0.7],
        "val_loss": [0.3, 0.8, 0.9, 0.5, 0.4, 0.45],
        "val_accuracy": [0.91, 0.52, 0.41, 0.61, 0.62, 0.71]})
    assert kept_scores(history, "val_macro_f1", "last").tolist() == [0.4, 0.7]
    assert kept_scores(history, "val_macro_f1", "best").tolist() == [0.9, 0.7]
    # Another metric is read at the epoch macro F1 and loss pick, as the loop keeps it.
    assert kept_scores(history, "val_accuracy", "best").tolist() == [0.91, 0.71]
    tie = history.assign(val_macro_f1=[0.5, 0.5, 0.5, 0.6, 0.6, 0.6])
    assert kept_scores(tie, "val_accuracy", "best").tolist() == [0.91, 0.62]  # lowest loss
