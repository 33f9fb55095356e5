"""The MLflow record of a run: read back with MLflow's own client."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert (tmp_path / "mlartifacts").is_dir()  # beside the runs, in their folder
    # A copy keeps the record, but its artifacts would land in the original's folder.
    import shutil

    copy = RunDir(tmp_path / "copy")
    shutil.copytree(run.path, copy.path)
    with pytest.raises(RaycellsError, match="moved or copied from .*run"):
        report_artifacts(copy, copy.report)


def test_the_runs_of_a_folder_share_one_store_and_nothing_goes_to_the_current_folder(
        tmp_path, monkeypatch):
    """Each run had a store of its own (RUN/mlflow.db), so runs could not be compared side by
    side in the MLflow UI, the thing it is for. The runs of a folder now share one."""
    from mlflow.tracking import MlflowClient

    from raycells.runs.tracking import local_uri

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runs = [RunDir(tmp_path / "runs" / name) for name in ("a", "b")]
    for run in runs:
        run.path.mkdir(parents=True)
        Tracker.open(run, Placement(), {"command": "cv"}, lambda kind, **info: None).finish("FINISHED")
    assert local_uri(runs[0]) == local_uri(runs[1]) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=local_uri(runs[0]))
    found = client.search_runs([client.get_experiment_by_name("raycells").experiment_id])
    assert sorted(r.info.run_name for r in found) == ["a", "b"]
    assert list(elsewhere.iterdir()) == []  # no ./mlruns, no ./mlflow.db
    # A run directory moved to another folder starts a new record in that folder's store.
    moved = RunDir(tmp_path / "other" / "a")
    runs[0].path.rename(moved.path.parent.mkdir() or moved.path)
    Tracker.open(moved, Placement(), {"command": "cv"}, lambda kind, **info: None).finish("FINISHED")
    client = MlflowClient(tracking_uri=local_uri(moved))
    assert [r.info.run_name for r in client.search_runs(
        [client.get_experiment_by_name("raycells").experiment_id])] == ["a"]


OPEN_A_RUN = """
import sys, time
from pathlib import Path
from raycells.runs.rundir import RunDir
from raycells.runs.tracking import Tracker
from raycells.settings import Placement
run = RunDir(Path(sys.argv[1]))
run.path.mkdir()
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both at once
events = []
Tracker.open(run, Placement(), {"command": "cv"}, lambda kind, **info: events.append(info)).finish("FINISHED")
print(events)
"""


@pytest.mark.slow  # two processes importing MLflow
def test_two_runs_starting_at_once_in_a_new_folder_both_get_their_record(tmp_path):
    """The first run in a folder makes its store's tables and the experiment: two at once both
    made them, and one lost its record."""
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from raycells.runs.tracking import local_uri

    start = time.time() + 6  # after both have imported MLflow
    runs = [subprocess.Popen([sys.executable, "-c", OPEN_A_RUN, str(tmp_path / name), str(start)],
                             stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    said = [process.communicate(timeout=120)[0] for process in runs]
    assert all("tracking_failed" not in text and "error" not in text for text in said), said
    client = MlflowClient(tracking_uri=local_uri(RunDir(tmp_path / "a")))
    found = client.search_runs([client.get_experiment_by_name("raycells").experiment_id])
    assert sorted(r.info.run_name for r in found) == ["a", "b"]


@pytest.mark.slow  # starts MLflow's server
def test_the_ui_the_runs_print_opens_on_a_runs_folder_and_lists_its_runs(tmp_path):
    """The printed `mlflow ui --backend-store-uri ...` failed in raycells' own venv
    (mlflow-skinny has no server). With the ui extra it starts; its REST API lists the folder's
    two runs side by side, and its page is served."""
    import json as jsonlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from importlib import metadata

    from raycells.runs.tracking import local_uri

    try:
        metadata.distribution("mlflow")
    except metadata.PackageNotFoundError:
        pytest.skip("MLflow's server is not installed: pip install 'raycells[ui]' (make sets it up)")
    runs = [RunDir(tmp_path / "runs" / name) for name in ("a", "b")]
    for run in runs:
        run.path.mkdir(parents=True)
        Tracker.open(run, Placement(), {"command": "cv"}, lambda kind, **info: None).finish("FINISHED")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", local_uri(runs[0]),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],  # not 4 on 2 cores
        cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name"
                                            "?experiment_name=raycells", timeout=5) as answer:
                    experiment = jsonlib.load(answer)["experiment"]["experiment_id"]
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read()[-3000:]
                time.sleep(1)
        ask = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", method="POST",
                                     data=jsonlib.dumps({"experiment_ids": [experiment]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(ask, timeout=30) as answer:
            found = jsonlib.load(answer)["runs"]
        assert sorted(run["info"]["run_name"] for run in found) == ["a", "b"]
        with urllib.request.urlopen(base, timeout=30) as page:
            assert "<html" in page.read().decode().lower()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]  # nothing in the folder it ran in


def test_a_run_recorded_in_its_own_store_keeps_it(tmp_path):
    """Runs recorded before the store moved to their folder have RUN/mlflow.db: their report
    and resume still go there."""
    from raycells.runs.tracking import local_uri

    run = RunDir(tmp_path / "old")
    run.path.mkdir()
    assert local_uri(run) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run.path / "mlflow.db").touch()
    assert local_uri(run) == f"sqlite:///{run.path / 'mlflow.db'}"
