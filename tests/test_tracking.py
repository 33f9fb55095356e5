"""The MLflow record of a run: read back with MLflow's own client."""

from __future__ import annotations

import json

import pytest

from raycells.runs.rundir import RunDir
from raycells.runs.tracking import Tracker, flat
from raycells.settings import Placement


def test_a_finished_run_is_one_mlflow_run_with_a_nested_run_per_fold(aml_run, mlflow_runs):
    client, parents, folds = mlflow_runs(aml_run)
    assert len(parents) == 1 and len(folds) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == aml_run.name
    assert parent.data.params["model"] == "tiny_cnn" and parent.data.params["epochs"] == "1"
    assert parent.data.params["augment.rotate"] == "1.0"
    assert parent.data.tags["raycells.command"] == "cv"
    config = json.loads((aml_run / "config.json").read_text())
    assert parent.data.tags["raycells.data_fingerprint"] == config["data"]["fingerprint"]
    assert {"test_macro_f1_mean", "test_macro_f1_std"} <= set(parent.data.metrics)
    for fold in folds:
        assert fold.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert fold.info.status == "FINISHED"
        k = int(fold.data.tags["raycells.fold"])
        metrics = json.loads((aml_run / f"fold-{k}" / "metrics.json").read_text())
        assert abs(fold.data.metrics["test_accuracy"] - metrics["accuracy"]) < 1e-9
        assert "test_sensitivity_MYO" in fold.data.metrics
        for name in ("train_loss", "val_macro_f1", "images_per_s", "data_wait_seconds"):
            assert [m.step for m in client.get_metric_history(fold.info.run_id, name)] == [1]


def test_a_store_that_fails_turns_tracking_off_with_one_event(tmp_path):
    events = []
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (tmp_path / "a-file").write_text("")  # no store can be made inside a file
    placement = Placement(mlflow_uri=f"sqlite:///{tmp_path}/a-file/mlflow.db")
    tracker = Tracker.open(run, placement, {"settings": {"experiment": {"epochs": 1}}},
                           lambda kind, **info: events.append(kind))
    tracker.fold_started(0, {"epochs": 1})
    tracker.epochs(0, [{"epoch": 1, "train_loss": 0.5}])
    tracker.finish("FINISHED")
    assert events == ["tracking_failed"] and not tracker.active
    assert not (run.path / "tracking.json").exists()


def test_tracking_off_records_nothing(tmp_path):
    events = []
    run = RunDir(tmp_path)
    tracker = Tracker.open(run, Placement(tracking=False), {}, lambda kind, **info: events.append(kind))
    tracker.fold_started(0, {})
    tracker.finish("FINISHED")
    assert events == [] and list(tmp_path.iterdir()) == []


def test_nested_settings_become_dotted_parameters():
    assert flat({"epochs": 2, "augment": {"flip": 0.5}, "weights": None}) == {
        "epochs": "2", "augment.flip": "0.5", "weights": "None"}


def test_the_report_goes_to_the_record_of_its_own_run_directory(tmp_path):
    from mlflow.tracking import MlflowClient

    from raycells.errors import RaycellsError
    from raycells.runs.tracking import local_uri, report_artifacts

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    tracker = Tracker.open(run, Placement(), {"command": "cv"}, lambda kind, **info: None)
    tracker.finish("FINISHED")
    run.report.mkdir()
    (run.report / "report.md").write_text("# Report\n")
    run_id = report_artifacts(run, run.report)
    client = MlflowClient(tracking_uri=local_uri(run))
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/report.md"]
    assert (run.path / "mlartifacts").is_dir()
    # A copy keeps the record, but its artifacts would land in the original's folder.
    import shutil

    copy = RunDir(tmp_path / "copy")
    shutil.copytree(run.path, copy.path)
    with pytest.raises(RaycellsError, match="moved or copied from .*run"):
        report_artifacts(copy, copy.report)
