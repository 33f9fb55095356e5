"""End-to-end cross-validation through Ray on the CPU, on a small subset of the real PBC images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from raycells.cv import run_cv
from raycells.manifest import read_manifest
from raycells.settings import build_settings

SMALL = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "lr": 0.01, "folds": 2, "epochs": 2}


def _settings(**overrides):
    return build_settings(flags={**SMALL, **overrides})


def test_two_worker_run_writes_the_complete_run_directory(ray_session, small_pbc, tmp_path,
                                                          complete_run):
    experiment, placement = _settings(data=str(small_pbc), workers=2)
    result = run_cv(tmp_path / "run", experiment, placement, manifest=read_manifest(small_pbc))
    complete_run(tmp_path / "run", folds=2, classes=8)
    assert sorted(result.per_fold) == [0, 1]
    plan = pd.read_parquet(tmp_path / "run" / "folds.parquet")
    tested = pd.concat(pd.read_parquet(tmp_path / "run" / f"fold-{k}" / "predictions.parquet") for k in (0, 1))
    assert sorted(tested["path"]) == sorted(plan["path"])  # every image tested exactly once
    assert 0 <= result.summary["accuracy"][0] <= 1


def test_a_run_stopped_after_its_first_fold_resumes_without_retraining_it(ray_session, small_pbc, tmp_path,
                                                                         complete_run):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "raycells.cli.main", "cv", "--data", str(small_pbc), "--out", str(run),
               "--folds", "3"] + [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if k != "folds"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "RAY_ADDRESS": ""})
    try:
        _wait_for(lambda: (run / "fold-0" / "metrics.json").is_file(), driver, timeout=300)
    finally:
        driver.send_signal(signal.SIGINT)  # as Ctrl-C would
        driver.wait(timeout=60)
    finished_at = (run / "fold-0" / "metrics.json").stat().st_mtime
    assert not (run / "fold-2" / "metrics.json").exists()

    experiment, placement = _settings(data=str(small_pbc), folds=3)
    result = run_cv(run, experiment, placement, resume=True)
    assert result.skipped[0] == 0 and sorted(result.per_fold) == [0, 1, 2]
    assert (run / "fold-0" / "metrics.json").stat().st_mtime == finished_at
    complete_run(run, folds=3, classes=8)


def test_reusing_a_run_directory_with_other_settings_is_refused(small_pbc, tmp_path):
    from raycells.errors import RaycellsError

    run = tmp_path / "run"
    run.mkdir()
    experiment, placement = _settings(data=str(small_pbc))
    other, _ = _settings(data=str(small_pbc), epochs=5, lr=0.1)
    from raycells.cv import prepare_run
    from raycells.rundir import RunDir

    prepare_run(RunDir(run), experiment, placement, read_manifest(small_pbc), resume=False)
    with pytest.raises(RaycellsError, match="already holds a run: pass --resume"):
        run_cv(run, experiment, placement, manifest=read_manifest(small_pbc))
    with pytest.raises(RaycellsError, match=r"other settings \(epochs: 2 -> 5; lr: 0.01 -> 0.1\)"):
        run_cv(run, other, placement, resume=True)


def test_a_killed_training_worker_is_recovered_from_its_checkpoint(ray_session, small_pbc, tmp_path,
                                                                  complete_run):
    run = tmp_path / "run"
    experiment, placement = _settings(data=str(small_pbc), epochs=4)
    errors = []
    thread = threading.Thread(target=lambda: _catch(errors, run_cv, run, experiment, placement,
                                                    manifest=read_manifest(small_pbc)))
    thread.start()
    # Kill once Ray Train has registered a checkpoint (its snapshot names one), not merely copied it.
    snapshot = run / "fold-0" / "checkpoint" / "checkpoint_manager_snapshot.json"
    _wait_for(lambda: snapshot.is_file() and "epoch-00" in snapshot.read_text(), thread, timeout=300)
    victims = _pids("RayTrainWorker")
    assert victims, "no training worker process found"
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=600)
    assert not errors, errors
    metrics = json.loads((run / "fold-0" / "metrics.json").read_text())
    assert metrics["restored_from_epochs"], "fold 0 did not restart from a checkpoint"
    history = pd.read_csv(run / "fold-0" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    complete_run(run, folds=2, classes=8)


def _catch(errors, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as error:  # reported by the test
        errors.append(error)


def _wait_for(condition, process, timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        alive = process.poll() is None if hasattr(process, "poll") else process.is_alive()
        assert alive, "the run ended before the condition was met"
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def _pids(title: str) -> list[int]:
    """Processes of this test session's Ray cluster whose command line holds `title`; another
    Ray cluster on the same machine (a benchmark, say) is left alone."""
    ours = {str(pid) for pid, command, parent in _processes()
            if "raylet" in command and parent == os.getpid()}
    pids = []
    for pid, command, _ in _processes():
        if title in command:
            try:
                environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(line.decode(errors="replace") == f"RAY_RAYLET_PID={raylet}"
                   for line in environ for raylet in ours):
                pids.append(pid)
    return pids


def _processes() -> list[tuple[int, str, int]]:
    """(pid, command line, parent pid) of every process that can be read."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            found.append((int(entry.name), command, parent))
    return found
