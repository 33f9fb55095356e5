"""Faults injected into a small real cv run (tiny CNN, 96 PBC images, 2 folds), each followed by
--resume: Ctrl-C while Ray starts or the cache is built, SIGKILL of the driver mid-fold (which
says what was kept, as when Ray ends the driver because its raylet died), a
checkpoint cut short, SIGTERM mid-training, a metrics.json cut short, a full disk. After each,
nothing finished is lost, and the last --resume completes the run without redoing finished
folds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.runs.lock import LOCK_FILE
from raycells.runs.rundir import RunDir

pytestmark = pytest.mark.slow
FOLDS, EPOCHS = 2, 4


def _cv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["cv", "--data", str(data), "--out", str(out), "--model", "tiny_cnn", "--image-size",
            "30", "--batch-size", "16", "--folds", str(FOLDS), "--epochs", str(EPOCHS), "--lr",
            "0.01", *extra]


AS_IN_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "runpy.run_module('raycells.cli.main', run_name='__main__')")
"""`raycells` with Python's own Ctrl-C handler, as in a terminal: a test suite started in the
background (`cmd &` in a script) hands its children an ignored SIGINT, which Python keeps."""


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """`raycells ARGS` in a process session of its own (its Ray processes in it too), its
    output in the file `log` (not a pipe: Ray's processes would hold a pipe open after the
    command has ended)."""
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-c", AS_IN_A_TERMINAL, *args],
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(path_glob: Path, process: subprocess.Popen, timeout: float = 300) -> Path:
    """The first file matching `path_glob` once it exists (the process must still run)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(path_glob.parent.glob(path_glob.name))
        if found:
            return found[-1]
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {path_glob}")
        time.sleep(0.2)
    pytest.fail(f"no {path_glob} after {timeout} s")


def _finish(process: subprocess.Popen, log: Path, timeout: float = 120,
            linger: float = 30) -> tuple[int, str]:
    """The command's exit status and output, once it has ended and what it left of Ray has
    ended too (see `_end_session`)."""
    try:
        process.wait(timeout=timeout)
    finally:
        left = _end_session(process, linger)
    assert linger == 0 or not left, f"Ray's processes outlived the command by {linger} s"
    return process.returncode, log.read_text()


def _end_session(process: subprocess.Popen, linger: float) -> bool:
    """Wait up to `linger` seconds for what is left of the process's session (Ray's processes)
    to end on its own, then end it; True if something was left to end."""
    deadline = time.time() + linger
    while True:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        if time.time() >= deadline:
            break
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return True


def _newest_checkpoint(run: RunDir, fold: int) -> int:
    return int(run.checkpoint(fold).parent.name[len("epoch-"):][:3])  # epoch-NNN[-rK]


def test_interrupts_kills_damaged_files_and_a_full_disk_each_resume_without_loss(
        tmp_path, small_pbc, monkeypatch, ray_address, complete_run):
    """Steps 0-3 run `raycells` in processes of their own (signals), 0 and 2-3 each starting a
    Ray of its own; 4-5 in this one, whose Ray (the shared cluster) the commands join."""
    run = RunDir(tmp_path / "run")

    # 0. Ctrl-C two seconds after the run directory is written (Ray starting, or the image
    #    cache being built at a size no other test uses): exit 130 and the resume command, and
    #    no Ray process left behind (Ray started whole, then shut down).
    log = tmp_path / "output.txt"
    starting = _start(_cv(small_pbc, run.path), log)
    _wait_for(run.config, starting)
    time.sleep(2)
    starting.send_signal(signal.SIGINT)
    code, err = _finish(starting, log)
    assert code == 130, err
    assert "Interrupted." in err and "--resume" in err and "Traceback" not in err

    # 1. SIGKILL of the driver mid-fold, on a cluster it joined (the tests' shared one, as a
    #    lab's): its lock stays behind, the fold's checkpoints stay, and the cluster ends the
    #    killed driver's workers (steps 4-5 train on it again).
    first = _start(_cv(small_pbc, run.path, "--resume", "--address", ray_address), log)
    _wait_for(run.fold(0) / "checkpoint" / "epoch-002" / "state.pt", first)
    first.kill()
    first.wait(timeout=60)
    deadline = time.time() + 30  # the watcher beside it, in its session, says its piece first
    while "ended abruptly" not in log.read_text() and time.time() < deadline:
        time.sleep(0.2)
    _, err = _finish(first, log, linger=0)
    # Killed (or ended by Ray when its raylet dies): the watcher beside it says what was kept.
    said = " ".join(err.split())
    assert "error: the command ended abruptly (killed, or its Ray processes stopped under it)." in said
    assert f"Finished folds and checkpoints are kept: continue with `raycells cv --resume --out " \
           f"{run.path}`" in said.rpartition("ended abruptly")[2]
    assert (run.path / LOCK_FILE).is_file() and not run.fold_finished(0)
    newest = _newest_checkpoint(run, 0)
    # The kill lands at epoch 2 or later: on a loaded machine the last epochs' checkpoints may
    # be written before it does, the fold still unfinished (no predictions, no metrics.json).
    assert 2 <= newest <= EPOCHS

    # 2. The newest checkpoint cut short (a full disk mid-write): resuming falls back to the one
    #    before it. 3. SIGTERM once fold 1 trains: exit 143, the resume command, no traceback.
    state = run.checkpoint(0)
    state.write_bytes(state.read_bytes()[:1000])
    second = _start(_cv(small_pbc, run.path, "--resume"), log)
    _wait_for(run.fold(1) / "checkpoint" / "epoch-001" / "state.pt", second)
    second.send_signal(signal.SIGTERM)
    code, err = _finish(second, log)
    text = " ".join(err.split())
    assert code == 143, err
    assert "took over the lock" in text and f"pid {first.pid}" in text
    assert f"Terminated (SIGTERM). Finished folds and checkpoints are kept: continue with " \
           f"`raycells cv --resume --out {run.path}`" in text
    assert "Traceback" not in err and ".cc:" not in err, err
    assert not (run.path / LOCK_FILE).exists()
    metrics = json.loads((run.fold(0) / "metrics.json").read_text())
    assert run.fold_finished(0) and metrics["epochs"] == EPOCHS
    assert metrics["restored_from_epochs"] == [newest - 1]  # epoch `newest` was cut short
    assert not run.fold_finished(1)

    # 4. fold 0's metrics.json cut short: that fold is predicted again from its checkpoint.
    # 5. The disk fills while fold 1's predictions are written: a clear error, nothing half
    #    written, and the next --resume completes the run.
    (run.fold(0) / "metrics.json").write_text('{"images": 4')
    real = __import__("pandas").DataFrame.to_parquet

    def full_disk(frame, path, *args, **kwargs):
        if "predictions" in str(path) and "fold-1" in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real(frame, path, *args, **kwargs)

    runner = CliRunner()
    with monkeypatch.context() as patch:
        patch.setattr("pandas.DataFrame.to_parquet", full_disk)
        result = runner.invoke(app, _cv(small_pbc, run.path, "--resume"), terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "--resume" in result.output
    assert run.fold_finished(0) and not run.fold_finished(1)
    assert not list(run.path.rglob("*.tmp"))

    finished_at = (run.fold(0) / "metrics.json").stat().st_mtime
    result = runner.invoke(app, _cv(small_pbc, run.path, "--resume"), terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "Finished in " in result.output and f"`raycells report {run.path}`" in result.output
    # Not a terminal (as in a batch job's log): a line per epoch and per fold, fold 1's epochs
    # from its checkpoint's history.
    assert "Fold 1: epoch 4" in result.output and "Fold 1 finished in " in result.output
    complete_run(run.path, folds=FOLDS, classes=8)
    assert (run.fold(0) / "metrics.json").stat().st_mtime == finished_at  # finished: not redone
    # Fold 0 was predicted again from its last checkpoint, not trained again from scratch.
    assert json.loads((run.fold(0) / "metrics.json").read_text())["restored_from_epochs"] == [
        newest - 1]
    assert not (run.path / LOCK_FILE).exists()
