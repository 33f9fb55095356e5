"""raycells evaluate: a run's models on other images of the same scheme, or mapped from another."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from raycells.data.index import index_dataset
from raycells.data.manifest import read_manifest
from raycells.errors import RaycellsError
from raycells.report.scoring import score_run
from raycells.runs.evaluate import run_evaluate


def _probs(run) -> np.ndarray:
    predictions = pd.read_parquet(run / "fold-0" / "predictions.parquet").sort_values("path")
    return predictions.filter(like="prob_").to_numpy()


def test_the_fold_models_are_averaged_and_scored_like_a_run(ray_session, aml_run, matek_dir,
                                                            tmp_path):
    manifest = index_dataset(matek_dir)  # the images the run trained on: allowed, and recorded
    with pytest.raises(RaycellsError, match=r"160 of the 160 images are byte-identical to images "
                                            r"the network\(s\) .* trained on.*--allow-overlap"):
        run_evaluate(tmp_path / "both", aml_run, manifest)
    both = run_evaluate(tmp_path / "both", aml_run, manifest, allow_overlap=True)
    assert both.folds == [0, 1] and not both.left_out
    warnings = json.loads((tmp_path / "both" / "config.json").read_text())["data"]["warnings"]
    assert len(warnings) == 1 and "not test results" in warnings[0]
    one = [run_evaluate(tmp_path / f"fold{k}", aml_run, manifest, fold=k, allow_overlap=True)
           for k in (0, 1)]
    assert [r.folds for r in one] == [[0], [1]]
    np.testing.assert_allclose(_probs(tmp_path / "both"),
                               (_probs(tmp_path / "fold0") + _probs(tmp_path / "fold1")) / 2, atol=1e-6)

    predictions = pd.read_parquet(tmp_path / "both" / "fold-0" / "predictions.parquet")
    assert len(predictions) == len(manifest.frame) and predictions.filter(like="prob_").shape[1] == 15
    metrics = json.loads((tmp_path / "both" / "fold-0" / "metrics.json").read_text())
    assert metrics["images"] == len(manifest.frame) and metrics["models"] == [0, 1]
    scores = score_run(tmp_path / "both")  # what `raycells report` reads
    assert scores.folds == [0] and scores.summary["accuracy"][0] == pytest.approx(metrics["accuracy"])
    with pytest.raises(RaycellsError, match="trained no models .*raycells evaluate"):
        run_evaluate(tmp_path / "again", tmp_path / "both", manifest)

    # Fold 0's network on fold 0's test images alone: none of them trained it.
    plan = pd.read_parquet(aml_run / "folds.parquet")
    test = manifest.frame[manifest.frame["path"].isin(plan.loc[plan["fold"] == 0, "path"])]
    held_out = dataclasses.replace(manifest, frame=test.reset_index(drop=True))
    assert run_evaluate(tmp_path / "held-out", aml_run, held_out, fold=0).folds == [0]


def test_other_classes_need_a_mapping_and_unfinished_sources_are_refused(aml_run, small_pbc, tmp_path):
    pbc = read_manifest(small_pbc)
    with pytest.raises(RaycellsError, match="basophil, eosinophil.*are not among the network's.*--map"):
        run_evaluate(tmp_path / "e", aml_run, pbc)
    with pytest.raises(RaycellsError, match="--fold 3: .* is not a finished fold"):
        run_evaluate(tmp_path / "e", aml_run, pbc, fold=3, mapping="pbc-to-aml")
    with pytest.raises(RaycellsError, match="--map pbc-to-nowhere: neither a built-in mapping"):
        run_evaluate(tmp_path / "e", aml_run, pbc, mapping="pbc-to-nowhere")
    assert not (tmp_path / "e").exists()
