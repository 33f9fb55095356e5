"""Damaged run directories and places that cannot be written: each gives a clear error (exit 2)
or is worked around, and nothing finished is lost. These need no Ray: the whole-run faults are
in test_runs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.errors import RaycellsError
from raycells.report.scoring import score_run
from raycells.runs.lock import LOCK_FILE, locked
from raycells.runs.rundir import RunDir

runner = CliRunner()
FOLD = [("MOB", [0.7, 0.2, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("MYO", [0.2, 0.6, 0.2])]


def test_a_damaged_predictions_file_is_named_and_the_other_folds_reported(tmp_path, prediction_run):
    run = RunDir(prediction_run(tmp_path, {0: FOLD, 1: FOLD, 2: FOLD}))
    (run.fold(1) / "predictions.parquet").write_bytes(b"PAR1 cut short")
    scores = score_run(run.path)
    assert scores.folds == [0, 2] and scores.missing == [1]
    assert "fold-1/predictions.parquet cannot be read" in scores.damaged[1]
    result = runner.invoke(app, ["report", str(run.path)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "Damaged files" in result.output
    assert "fold-1/predictions.parquet cannot be read" in (run.report / "report.md").read_text()
    saved = json.loads((run.report / "metrics.json").read_text())
    assert list(saved["damaged_folds"]) == ["1"] and saved["folds"] == [0, 2]


def test_a_config_without_its_data_table_is_reported_from_the_fold_plan(tmp_path, prediction_run):
    run = RunDir(prediction_run(tmp_path, {0: FOLD, 1: FOLD}))
    run.config.write_text(json.dumps({"settings": {"experiment": {"folds": 2}}}))
    assert score_run(run.path).classes == ["MOB", "MYO", "NGS"]
    assert runner.invoke(app, ["report", str(run.path)]).exit_code == 0


def test_only_damaged_predictions_is_a_clear_error(tmp_path, prediction_run):
    run = RunDir(prediction_run(tmp_path, {0: FOLD}))
    (run.fold(0) / "predictions.parquet").write_text("garbage")
    result = runner.invoke(app, ["report", str(run.path)])
    assert result.exit_code == 2
    assert "no fold has predictions yet that can be read" in result.output
    assert "--resume" in result.output


def test_a_fold_is_finished_only_when_its_metrics_match_its_predictions(tmp_path, prediction_run):
    run = RunDir(prediction_run(tmp_path, {0: FOLD, 1: FOLD, 2: FOLD, 3: FOLD}))
    for k in range(4):
        (run.fold(k) / "metrics.json").write_text(json.dumps({"images": len(FOLD)}))
    (run.fold(1) / "metrics.json").write_text('{"images": 3, "accur')  # cut short
    (run.fold(2) / "metrics.json").write_text(json.dumps({"images": 2}))  # not these predictions
    (run.fold(3) / "predictions.parquet").unlink()
    assert [run.fold_finished(k) for k in range(4)] == [True, False, False, False]


def test_a_second_command_on_a_run_directory_is_refused_with_the_holders_pid(tmp_path, matek_dir):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom raycells.runs.lock import locked\n"
         f"with locked({str(out)!r}, 'cv'):\n    print('held', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = runner.invoke(app, ["cv", "--data", str(matek_dir), "--out", str(out),
                                     "--folds", "2", "--drop-small-classes"])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert f"is in use by `raycells cv` (pid {holder.pid}" in text
        assert "one command at a time" in text
        assert (out / LOCK_FILE).is_file()  # the holder's lock is left alone
        assert os.listdir(out) == [LOCK_FILE]  # and the refused command wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_is_released_and_the_folder_it_made_removed_when_nothing_was_written(tmp_path):
    with locked(tmp_path / "run", "cv") as note:
        assert note is None and (tmp_path / "run" / LOCK_FILE).is_file()
    assert not (tmp_path / "run").exists()
    with locked(tmp_path / "kept", "cv"):
        (tmp_path / "kept" / "config.json").write_text("{}")
    assert os.listdir(tmp_path / "kept") == ["config.json"]


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead, "host": os.uname().nodename,
                                                  "command": "cv", "started": "earlier"}))
    with locked(tmp_path, "transfer") as note:
        assert f"pid {dead}" in note and "no longer runs" in note
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "transfer"
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(tmp_path):
    lock = tmp_path / LOCK_FILE
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "cv"}))
    with pytest.raises(RaycellsError, match=f"pid 1 on elsewhere.*delete {lock}"), \
            locked(tmp_path, "cv"):
        pass
    assert lock.is_file()


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    cases = [
        (["cv", "--out", str(a_file)], "is a file, and a folder is wanted"),
        (["cv", "--out", str(a_file / "run")], "is a file, so nothing can be written under it"),
        (["data", "index", str(tmp_path), "--out", str(tmp_path)], "is a folder, and a file is wanted"),
        (["data", "demo", str(a_file)], "is a file, and a folder is wanted"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args, terminal_width=300)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_ray_that_cannot_start_is_a_clear_error_with_the_resume_command(tmp_path, small_pbc,
                                                                        monkeypatch, no_ray):
    import ray

    def timed_out(*args, **kwargs):
        raise RuntimeError("The current node timed out during startup.\nmore of Ray's text")

    monkeypatch.setattr(ray, "init", timed_out)
    out = tmp_path / "run"
    result = runner.invoke(app, ["cv", "--data", str(small_pbc), "--out", str(out), "--model",
                                 "tiny_cnn", "--folds", "2", "--batch-size", "16"], terminal_width=300)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert ("Ray could not start a local cluster (RuntimeError: The current node timed out "
            "during startup.)") in text
    assert f"continue with `raycells cv --resume --out {out}`" in text
    assert "more of Ray's text" not in text and "Traceback" not in text
    assert (out / "config.json").is_file() and not (out / LOCK_FILE).exists()


def test_sigterm_while_indexing_ends_quietly_with_143_and_writes_nothing(tmp_path, pbc_dir):
    out = tmp_path / "manifest.parquet"
    log = tmp_path / "output.txt"
    with open(log, "w") as output:
        # An empty cache folder: the images are read, not their facts recalled (raycells.data.probes).
        indexing = subprocess.Popen([sys.executable, "-m", "raycells.cli.main", "data", "index",
                                     str(pbc_dir), "--out", str(out)],
                                    stdout=output, stderr=subprocess.STDOUT,
                                    env={**os.environ, "RAYCELLS_CACHE": str(tmp_path / "cache")})
    deadline = time.time() + 60
    while not _reads_from(indexing.pid, pbc_dir):  # hashing and decoding 8,562 images
        assert time.time() < deadline and indexing.poll() is None, log.read_text()
        time.sleep(0.05)
    indexing.send_signal(signal.SIGTERM)
    try:  # it stops at the next image (indexing all of them takes ~6 s on an idle machine)
        assert indexing.wait(timeout=30) == 143
    except subprocess.TimeoutExpired:
        indexing.kill()
        raise AssertionError(f"indexing hung after SIGTERM: {log.read_text()[-2000:]}") from None
    assert "Traceback" not in log.read_text() and not out.exists()
    assert not list(tmp_path.glob(".manifest.parquet.*"))


@pytest.fixture
def ctrl_c():
    """Ctrl-C raising KeyboardInterrupt here, as in a terminal (pytest-xdist's workers ignore
    it, and a signal ignored stays ignored: `held_signals`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_indexing_stops_at_the_next_image(tmp_path, pbc_dir, monkeypatch, ctrl_c):
    """Ctrl-C reaches the caller once the thread pool is down, the images not yet read left
    unread, no thread left behind, the handler restored. (Raised while the pool took the images
    it could leave the pool's locks taken, and the process hung at exit: a race the SIGTERM test
    above met under load, 1 in 8 tries; `raycells.interrupts` holds the signal meanwhile.)"""
    import threading

    from raycells.data import index

    monkeypatch.setenv("RAYCELLS_CACHE", str(tmp_path / "cache"))  # every image read, none recalled
    read = []
    real = index._probe_one
    monkeypatch.setattr(index, "_probe_one", lambda *args, **kwargs: read.append(1) or real(
        *args, **kwargs))
    threads = threading.active_count()

    def interrupt(done, total):
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        index.index_dataset(pbc_dir, progress=interrupt, threads=2)
    assert len(read) < 1000, f"{len(read)} of 8,562 images read after Ctrl-C"
    assert threading.active_count() == threads and signal.getsignal(signal.SIGINT) is (
        signal.default_int_handler)


def _reads_from(pid: int, folder) -> bool:
    """Whether process `pid` has a file under `folder` open (Linux's /proc)."""
    try:
        links = [os.readlink(entry) for entry in os.scandir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith(str(folder)) for link in links)


def _linked_classes(folder, pbc_dir, per_class: dict[str, int]):
    """A `folders`-layout dataset of links to real PBC images: `per_class` class -> count."""
    for name, count in per_class.items():
        (folder / name).mkdir(parents=True)
        for image in sorted((pbc_dir / name).iterdir())[:count]:
            (folder / name / image.name).symlink_to(image)
    return folder


def test_one_class_is_refused_before_any_work(tmp_path, pbc_dir):
    """A dataset of one class used to report 1.000 on every score."""
    data = _linked_classes(tmp_path / "data", pbc_dir, {"basophil": 12})
    run = tmp_path / "run"
    result = runner.invoke(app, ["cv", "--data", str(data), "--folds", "2", "--out", str(run)],
                           terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "1 class to train on (basophil)" in result.output
    assert "a classifier needs at least two" in result.output
    assert not (run / "config.json").exists()


def test_a_training_part_smaller_than_a_batch_is_refused_before_any_work(tmp_path, pbc_dir):
    """4 training images and batch 64 with the last part batch dropped trained zero steps every
    epoch, and the untrained network was scored."""
    data = _linked_classes(tmp_path / "data", pbc_dir, {"basophil": 4, "eosinophil": 4})
    run = tmp_path / "run"
    result = runner.invoke(app, ["cv", "--data", str(data), "--folds", "2", "--batch-size", "64",
                                 "--out", str(run)], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "fewer than one batch of 64" in result.output and "Lower --batch-size" in result.output
    assert not (run / "config.json").exists()


def test_a_fold_resumes_from_checkpoints_its_killed_driver_had_not_recorded(tmp_path):
    """Ray Train records a checkpoint at its next look at the workers (every 0.5 s) after the
    worker wrote it: a driver killed in between leaves newer epochs on disk than Ray Train's last,
    or epochs it recorded none of. The fold goes on from the newest readable one (one cut short
    is passed over), and once the fold ends only the folders Ray Train keeps are left."""
    from raycells.train.checkpoint import Checkpoint, Progress, drop_untracked, newest_readable, save_checkpoint

    folder = tmp_path / "checkpoint"
    for name, epoch in (("epoch-001", 0), ("epoch-002", 1), ("epoch-003", 2), ("epoch-004", 3),
                        ("epoch-002-r1", 1)):
        (folder / name).mkdir(parents=True)
        save_checkpoint(Checkpoint(model_name="tiny_cnn", classes=["a", "b"], image_size=32,
                                   experiment={}, progress=Progress(epoch=epoch), model={},
                                   optimizer={}, scaler={}), folder / name)
    (folder / "epoch-004" / "state.pt").write_bytes(b"cut short")
    (folder / "epoch-002-r1").rename(folder / "epoch-003-r1")  # a later restart's epoch 3
    assert newest_readable(folder, folder / "epoch-002").path == folder / "epoch-003-r1" / "state.pt"
    (folder / "epoch-003-r1" / "state.pt").write_bytes(b"cut short")
    assert newest_readable(folder, folder / "epoch-001").progress.epoch == 2  # epoch-003
    # Ray Train recorded none of them (a driver killed in the first epochs' seconds): the same.
    assert newest_readable(folder).progress.epoch == 2
    assert newest_readable(tmp_path / "fresh") is None  # a fold that wrote none starts afresh
    drop_untracked([folder / "epoch-001", folder / "epoch-002"])
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-001", "epoch-002"]


def test_a_fold_resumed_past_ray_trains_record_keeps_the_network_its_record_names(tmp_path):
    """Resumed from epoch 3, which Ray Train had not recorded (its last: epoch 1), the fold's
    next checkpoint is kept beside epoch 1's, whose network file must then stay; the clean-clone
    fault chain once found epoch 1's checkpoint naming a file pruned as no longer needed."""
    from raycells.train.checkpoint import Checkpoint, Progress, newest_readable, recorded_best, save_checkpoint

    folder = tmp_path / "checkpoint"
    for epoch in (0, 2):
        (folder / f"epoch-{epoch + 1:03d}").mkdir(parents=True)
        best = {"epoch": epoch + 1, "file": f"best-epoch-{epoch + 1:03d}.safetensors"}
        save_checkpoint(Checkpoint(model_name="tiny_cnn", classes=["a", "b"], image_size=32,
                                   experiment={}, progress=Progress(epoch=epoch, best=best),
                                   model={}, optimizer={}, scaler={}), folder / f"epoch-{epoch + 1:03d}")
    restored = newest_readable(folder, folder / "epoch-001")
    assert restored.progress.epoch == 2
    assert recorded_best(folder / "epoch-001", restored) == "best-epoch-001.safetensors"
    assert recorded_best(folder / "epoch-003", restored) == "best-epoch-003.safetensors"
    assert recorded_best(None, restored) is None  # Ray Train recorded none: it keeps only the next
    (folder / "epoch-001" / "state.pt").write_bytes(b"cut short")
    assert recorded_best(folder / "epoch-001", restored) is None


def test_ctrl_c_while_ray_starts_waits_until_it_has_started(ctrl_c):
    """Ctrl-C during `ray.init` is raised once Ray has started whole: cut short, it leaves a
    half-started cluster `ray.shutdown` cannot end, whose agents then outlive the command by a
    minute (the fault chain checks that nothing is left)."""
    from raycells.interrupts import held_signals

    handler, done = signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt), held_signals(signal.SIGINT):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        done.append("the block ran to its end")
    assert done and signal.getsignal(signal.SIGINT) is handler
