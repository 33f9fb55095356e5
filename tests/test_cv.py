"""End-to-end cross-validation through Ray on the CPU, on a small subset of the real PBC images."""

from __future__ import annotations

import pandas as pd
import pytest

from raycells.data.manifest import read_manifest
from raycells.runs.cv import run_cv
from raycells.settings import build_settings

SMALL = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "lr": 0.01, "folds": 2, "epochs": 2}


def _settings(**overrides):
    return build_settings(flags={**SMALL, **overrides})


def test_reusing_a_run_directory_with_other_settings_is_refused(small_pbc, tmp_path):
    from raycells.errors import RaycellsError

    run = tmp_path / "run"
    run.mkdir()
    experiment, placement = _settings(data=str(small_pbc))
    other, _ = _settings(data=str(small_pbc), epochs=5, lr=0.1)
    from raycells.runs.rundir import RunDir
    from raycells.runs.setup import prepare_run

    prepare_run(RunDir(run), experiment, placement, read_manifest(small_pbc), resume=False)
    with pytest.raises(RaycellsError, match="already holds a run: pass --resume"):
        run_cv(run, experiment, placement, manifest=read_manifest(small_pbc))
    with pytest.raises(RaycellsError, match=r"other settings \(epochs: 2 -> 5; lr: 0.01 -> 0.1\)"):
        run_cv(run, other, placement, resume=True)


def test_a_workers_refusal_reaches_the_driver_as_itself(ray_session, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    from raycells.errors import RaycellsError
    from raycells.train.trainer import fit

    trainer = TorchTrainer(
        _refuse, train_loop_config={"folder": str(tmp_path / "elsewhere")},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(storage_path=str(tmp_path),
                                       failure_config=ray.train.FailureConfig(max_failures=0)))
    with pytest.raises(RaycellsError, match=r"elsewhere \(the run directory, --out\) does not exist"):
        fit(trainer)


def _refuse(config):
    from raycells.train.loop import check_reachable

    check_reachable({"the run directory, --out": config["folder"]})


def test_the_same_seed_gives_the_same_run(ray_session, small_pbc, tmp_path, mlflow_runs,
                                          monkeypatch):
    """Two runs with the same settings (oversampled, augmented, two epochs, one CPU worker) give
    byte-identical predictions and the same history apart from its timings. They start from
    `--weights w.pt`, a path relative to the folder the command ran in: Ray Train runs the
    workers in a folder of its own, and they read it from there."""
    import json

    import torch

    from raycells.train.models import create_model

    timings = ["images_per_s", "train_seconds", "data_wait_seconds", "val_seconds", "ended_at"]
    torch.save(create_model("tiny_cnn", 8).state_dict(), tmp_path / "w.pt")
    monkeypatch.chdir(tmp_path)

    def run(name, seed, **settings):
        experiment, placement = _settings(data=str(small_pbc), sampling="oversample", seed=seed,
                                          workers=1, weights="w.pt", **settings)
        assert experiment.weights == str(tmp_path / "w.pt")
        run_cv(tmp_path / name, experiment, placement, manifest=read_manifest(small_pbc),
               only_folds=[0])
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["settings"]["experiment"]["weights"] == str(tmp_path / "w.pt")
        fold = tmp_path / name / "fold-0"
        return (fold / "predictions.parquet").read_bytes(), pd.read_csv(fold / "history.csv").drop(
            columns=timings)

    first, again = run("first", 7), run("again", 7, tracking=False)
    assert first[0] == again[0], "predictions.parquet differs between two runs with one seed"
    pd.testing.assert_frame_equal(first[1], again[1])
    # Recorded in MLflow epoch by epoch, unless tracking is off (which changes nothing else).
    client, _, (fold,) = mlflow_runs(tmp_path / "first")
    assert [m.step for m in client.get_metric_history(fold.info.run_id, "val_loss")] == [1, 2]
    assert {run.info.run_name for run in client.search_runs([fold.info.experiment_id])} == {
        "first", "fold-0"}  # the store the two runs' folder shares: nothing from "again"
    assert not (tmp_path / "again" / "tracking.json").exists()
    # Held on the device, read once: repeatable too, and each epoch draws the stream's copies
    # (each class's images seen alike, but for the last part batch each feed drops).
    held, held_again = (run(name, 7, images_on_device=True) for name in ("held", "held-again"))
    assert held[0] == held_again[0]
    pd.testing.assert_frame_equal(held[1], held_again[1])
    assert (held[1]["feed"] == "device").all() and (first[1]["feed"] == "stream").all()
    seen = [column for column in first[1] if column.startswith("seen_")]
    assert (held[1][seen] - first[1][seen]).abs().to_numpy().sum() < 2 * SMALL["batch_size"]


def test_label_conflicts_are_warned_about_or_left_out(pbc_manifest, tmp_path):
    """PBC's eosinophil/EO_225902.jpg and neutrophil/BNE_191112.jpg are the same file: a run keeps
    the pair in one fold and says so, or leaves both out with --drop-conflicts."""
    from raycells.data.manifest import Manifest
    from raycells.runs.rundir import RunDir
    from raycells.runs.setup import prepare_run

    frame = pbc_manifest.frame
    pair = frame["path"].str.endswith(("EO_225902.jpg", "BNE_191112.jpg"))
    small = frame[pair | (frame.groupby("label").cumcount() < 10)].reset_index(drop=True)
    manifest = Manifest(frame=small, root=pbc_manifest.root, layout="pbc", source="pbc")
    for drop in (False, True):
        experiment, placement = _settings(data=pbc_manifest.root, drop_conflicts=drop)
        run = RunDir(tmp_path / f"drop-{drop}")
        _, plan = prepare_run(run, experiment, placement, manifest, resume=False)
        warning = run.read_config()["data"]["warnings"][0]
        assert "label conflicts" in warning and "EO_225902.jpg" in warning
        kept = plan[plan["path"].str.endswith(("EO_225902.jpg", "BNE_191112.jpg"))]
        if drop:
            assert kept.empty and "left out 2 images" in warning
        else:
            assert len(kept) == 2 and kept["fold"].nunique() == 1 and "1 set," in warning
