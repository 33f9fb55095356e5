"""Hostile inputs (issue 33): a file, name or address from a careless user or an attacker gives a
clear error or is made harmless, never a traceback, a hang or a leak. One test per item, named
after what it protects. These need no Ray."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from raycells.errors import RaycellsError
from raycells.files import write_csv
from raycells.settings import build_settings, read_config_file


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_made_inert(tmp_path):
    """A class named `=1+2` (or a file path starting with =, +, -, @) was written as is to
    predictions.csv and per_class.csv: a formula when the file is opened in a spreadsheet."""
    frame = pd.DataFrame({"path": ["=HYPERLINK(\"http://x\")", "+cmd", "-2+3", "@SUM(A1)", "ok.png"],
                          "label": ["=1+2", "a", "b", "c", "d"], "=1+2": [-0.5, 0.1, 0.2, 0.3, 1.0]})
    write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "path,label,'=1+2"  # headers too
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["path"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+cmd", "'-2+3", "'@SUM(A1)", "ok.png"]
    assert back["label"].tolist()[0] == "'=1+2"
    assert np.allclose(back.iloc[:, 2], [-0.5, 0.1, 0.2, 0.3, 1.0])  # numbers stay numbers


def test_every_csv_raycells_writes_goes_through_write_csv():
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "raycells"
    writers = [str(p.relative_to(package)) for p in package.rglob("*.py") if ".to_csv(" in p.read_text()]
    assert writers == ["files.py"]


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """A 1 KB file of nested aliases (a "billion laughs") ran out of memory reading --config."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1200
    started = time.monotonic()
    with pytest.raises(RaycellsError, match="aliases expand it to more than 100,000 values"):
        read_config_file(bomb)
    assert time.monotonic() - started < 5
    (tmp_path / "ok.yaml").write_text("base: &base {flip: 0.5}\naugment: *base\nepochs: 3\n")
    assert read_config_file(tmp_path / "ok.yaml")["augment"] == {"flip": 0.5}


def test_an_oversized_settings_file_is_refused(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"epochs": 3, "pad": "' + "x" * (1 << 20) + '"}')
    with pytest.raises(RaycellsError, match="more than a settings file holds"):
        read_config_file(big)


def test_credentials_in_the_mlflow_address_are_never_stored_or_printed():
    """`--mlflow-uri http://user:token@host` stored the token (twice) in config.json and printed
    it; MLflow reads credentials from its environment variables."""
    with pytest.raises(RaycellsError) as refused:
        build_settings(flags={"mlflow_uri": "http://alice:s3cr3t-token@mlflow.lab:5000"})
    assert "s3cr3t" not in str(refused.value)
    assert "http://alice:***@mlflow.lab:5000" in str(refused.value)
    assert "MLFLOW_TRACKING_PASSWORD" in str(refused.value)
    assert build_settings(flags={"mlflow_uri": "http://mlflow.lab:5000"})[1].mlflow_uri


def test_class_names_that_look_like_tex_are_drawn_as_text(tmp_path):
    """A class named `$\\undefinedmacro{$` stopped the report in matplotlib's mathtext."""
    from raycells.report import plots

    classes = ["$\\undefinedmacro{$", "NGS"]
    plots.per_class_png(classes, [[0.5, 0.6], []], [[0.4, 0.3], []], tmp_path / "per_class.png")
    plots.confusion_png(np.array([[3, 1], [0, 4]]), classes, tmp_path / "confusion.png", normalise=True)
    assert (tmp_path / "per_class.png").stat().st_size > 0 and (tmp_path / "confusion.png").is_file()


@pytest.mark.parametrize("command", [["export"], ["explain", "."]])
def test_an_output_that_is_a_file_is_refused_before_the_work(tmp_path, command):
    """`explain`/`export --out FILE` did all the work, then stopped with a raw traceback."""
    from typer.testing import CliRunner

    from raycells.cli.main import app

    taken = tmp_path / "taken"
    taken.write_text("someone's file")
    missing_run = tmp_path / "no-run-here"  # the work would start by reading it
    result = CliRunner().invoke(app, [*command, "--from", str(missing_run), "--out", str(taken)],
                                terminal_width=300)
    assert result.exit_code == 2, result.output
    assert f"--out {taken} is a file, and a folder is wanted" in " ".join(result.output.split())
    assert taken.read_text() == "someone's file"


def test_a_run_directory_never_sends_its_report_to_the_server_its_tracking_json_names(tmp_path):
    """tracking.json comes with a run directory: set its "uri" to someone's server and `raycells
    report RUN` uploaded every report file there."""
    import json
    import socket

    from raycells.runs.rundir import RunDir
    from raycells.runs.tracking import report_artifacts

    listener = socket.socket()  # a server that would see any connection
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    address = f"http://127.0.0.1:{listener.getsockname()[1]}"
    run = RunDir(tmp_path / "run")
    run.report.mkdir(parents=True)
    (run.report / "report.md").write_text("# Report\n")
    (run.path / "tracking.json").write_text(json.dumps({"uri": address, "run_id": "abc"}))
    with pytest.raises(RaycellsError, match=f"pass --mlflow-uri {address} to add it"):
        report_artifacts(run, run.report)
    with pytest.raises(socket.timeout):
        listener.accept()  # nothing connected
    listener.close()


def test_a_csv_cannot_reach_outside_its_folder_through_a_link(tmp_path):
    """A row `etclink/hostname` with etclink -> /etc was read without --allow-outside: the
    "inside the CSV's folder" check looked at the path before its links were followed."""
    from raycells.data.index import index_dataset

    (tmp_path / "etclink").symlink_to("/etc")
    (tmp_path / "list.csv").write_text("path,label\netclink/hostname,a\netclink/passwd,b\n")
    with pytest.raises(RaycellsError, match=r"2 listed paths lead outside the CSV's folder .*through a link"):
        index_dataset(tmp_path / "list.csv")


def test_identical_files_that_leave_a_class_too_few_pictures_are_named():
    """One byte-identical pair in a small dataset stopped the fold split with scikit-learn's
    ValueError traceback (groups too few for the folds)."""
    from raycells.data.folds import make_folds

    frame = pd.DataFrame({"path": [f"{c}{i}.png" for c in "ab" for i in range(5)],
                          "label": ["a"] * 5 + ["b"] * 5,
                          "sha1": ["s0", "s0", "s2", "s3", "s4", "t0", "t1", "t2", "t3", "t4"]})
    with pytest.raises(RaycellsError, match=r"fewer different pictures than the 5 folds: a \(5 images, "
                                            r"4 different pictures\).*use --folds 4"):
        make_folds(frame, folds=5, seed=0)
    plan = make_folds(frame, folds=4, seed=0)  # as the message says
    assert plan.loc[plan["path"] == "a0.png", "fold"].item() == plan.loc[plan["path"] == "a1.png", "fold"].item()


def test_class_names_mlflow_would_refuse_do_not_stop_the_record(tmp_path):
    """Class names with `+ ( ‹ =` made MLflow refuse the fold's test scores, which stopped the
    record (`tracking_failed`) for the rest of the run."""
    from mlflow.tracking import MlflowClient

    from raycells.metrics import score_fold
    from raycells.runs.rundir import RunDir
    from raycells.runs.tracking import Tracker, local_uri
    from raycells.settings import Placement

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    events = []
    tracker = Tracker.open(run, Placement(), {"command": "cv"}, lambda kind, **info: events.append(kind))
    classes = ["+(‹=", "ok"]
    metrics = score_fold(np.array([0, 1]), np.eye(2), classes)
    tracker.fold_started(0, {"epochs": 1})
    tracker.fold_finished(0, metrics, [{"epoch": 1, "train_loss": 0.5, "steps": 3}])
    tracker.finish("FINISHED")
    assert "tracking_failed" not in events and tracker.active
    fold_run = json.loads((run.path / "tracking.json").read_text())["folds"]["0"]
    logged = MlflowClient(tracking_uri=local_uri(run)).get_run(fold_run).data.metrics
    assert logged["test_sensitivity_____"] == 1.0 and logged["test_sensitivity_ok"] == 1.0
    assert logged["steps"] == 3


class _Planted:
    """Unpickling this would create `marker`: proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_swapped_into_a_runs_weights_is_refused_before_ray_on_resume(tmp_path):
    """A pickle swapped into source.pt, then `transfer --resume`: refused only once the training
    workers read it, after Ray had started (93 s)."""
    import torch
    from PIL import Image

    from raycells.data.index import index_dataset
    from raycells.runs.rundir import RunDir
    from raycells.runs.setup import prepare_run
    from raycells.train.models import create_model

    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 100 if label == "a" else 200, 0)).save(data / label / f"{i}.png")
    weights = tmp_path / "run" / "source.pt"
    weights.parent.mkdir()
    torch.save(create_model("tiny_cnn", 2).state_dict(), weights)
    experiment, placement = build_settings(flags={"data": str(data), "model": "tiny_cnn", "folds": 2,
                                                  "batch_size": 2, "weights": str(weights)})
    run = RunDir(tmp_path / "run")
    prepare_run(run, experiment, placement, index_dataset(data), resume=False)
    marker = tmp_path / "code-ran"
    torch.save({"model": _Planted(marker)}, weights)
    with pytest.raises(RaycellsError, match="source.pt"):
        prepare_run(run, experiment, placement, None, resume=True)
    assert not marker.exists()


def test_a_huge_file_among_the_images_is_listed_as_unreadable_and_the_rest_indexed(tmp_path, pbc_dir):
    """A 12 GB sparse `big.jpg` ran out of memory while indexing, and the whole index was lost."""
    from raycells.data.index import index_dataset

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for image in sorted((pbc_dir / "basophil").iterdir())[:3]:
            (tmp_path / name / image.name).symlink_to(image)
    with open(tmp_path / "a" / "big.jpg", "wb") as big:
        big.truncate(12 << 30)  # sparse: no disk used
    started = time.monotonic()
    manifest = index_dataset(tmp_path)
    assert time.monotonic() - started < 30
    assert len(manifest) == 6
    [problem] = manifest.unreadable
    assert problem.path.endswith("big.jpg") and "12,884,901,888 bytes" in problem.reason


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_a_cluster_address_where_nothing_listens_fails_in_seconds(address, no_ray):
    """`--address 127.0.0.1:1` (nothing listening) hung silently for minutes, `--resume` too."""
    from raycells.errors import RayUnavailable
    from raycells.settings import Placement
    from raycells.train.trainer import init_ray

    started = time.monotonic()
    with pytest.raises(RayUnavailable, match=f"nothing answers at --address {address}"):
        init_ray(Placement(address=address))
    assert time.monotonic() - started < 10
    with pytest.raises(RayUnavailable, match="expected host:port"):
        init_ray(Placement(address="localhost"))


def test_an_mlflow_server_that_does_not_answer_is_named_before_any_work(tmp_path, small_pbc):
    """`--mlflow-uri http://127.0.0.1:9`: about 4 minutes of silence, then a warning."""
    from typer.testing import CliRunner

    from raycells.cli.main import app

    run = tmp_path / "run"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["cv", "--data", str(small_pbc), "--folds", "2", "--batch-size", "16",
                                      "--mlflow-uri", "http://127.0.0.1:9", "--out", str(run)],
                                terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "nothing answers at --mlflow-uri http://127.0.0.1:9" in " ".join(result.output.split())
    assert time.monotonic() - started < 30 and not (run / "config.json").exists()


ENDED_BY_RAY = """
import os, sys
from pathlib import Path
from raycells.cli.common import ray_messages_to
run = Path(sys.argv[1])
with ray_messages_to(run / "ray.log", (run / "config.json", "Continue with `raycells cv --resume`.")):
    os.write(2, b"core_worker.cc:1: the raylet died\\n")  # as Ray's C++ core writes
    if sys.argv[2] == "quick-exit":
        os._exit(1)  # what Ray's QuickExit does when the raylet dies: no Python code runs
"""


@pytest.mark.parametrize("ending", ["quick-exit", "normal"])
def test_a_command_that_ray_ends_abruptly_still_says_what_was_kept(tmp_path, ending):
    """Killing the run's raylet (kill -9) ended `raycells cv` with exit 1 and no word: Ray's core
    worker leaves the process at once, and the messages collected for ray.log were lost. The
    watcher beside the command now keeps them in ray.log and says how to go on; a command that
    ends normally gets no such line."""
    import subprocess
    import sys

    (tmp_path / "config.json").write_text("{}")
    done = subprocess.run([sys.executable, "-c", ENDED_BY_RAY, str(tmp_path), ending],
                          capture_output=True, text=True, timeout=60)
    assert (tmp_path / "ray.log").read_text() == "core_worker.cc:1: the raylet died\n"
    if ending == "normal":
        assert done.returncode == 0 and done.stderr == ""
        return
    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    assert said == (f"error: the command ended abruptly (killed, or its Ray processes stopped under "
                    f"it). Ray's messages are in {tmp_path / 'ray.log'}. Continue with "
                    f"`raycells cv --resume`.")


def test_a_checkpoint_cannot_point_its_network_outside_its_folder(tmp_path):
    """A checkpoint names the file of the fold's network (`best`); a run directory from someone
    else could name one anywhere (`../../elsewhere.safetensors`), which every command that reads
    the fold's network then loaded. Only a best-epoch file beside the epoch folders is read."""
    import torch
    from safetensors.torch import save_file

    from raycells.train.checkpoint import Checkpoint, Progress, load_checkpoint, save_checkpoint

    save_file({"w": torch.zeros(2)}, str(tmp_path / "elsewhere.safetensors"))
    folder = tmp_path / "run" / "fold-0" / "checkpoint"
    for name in ("../../../elsewhere.safetensors", "best-epoch-002.safetensors"):
        epoch = folder / "epoch-002"
        epoch.mkdir(parents=True, exist_ok=True)
        best = {"epoch": 2, "val_macro_f1": 0.5, "val_loss": 1.0, "file": name}
        save_checkpoint(Checkpoint(model_name="tiny_cnn", classes=["a", "b"], image_size=32,
                                   experiment={}, progress=Progress(epoch=1, best=best), model={},
                                   optimizer={}, scaler={}), epoch)
        if name.startswith(".."):
            with pytest.raises(RaycellsError, match=r"state.pt: its best network is named "
                                                    r"'../../../elsewhere.safetensors', not a file"):
                load_checkpoint(epoch)
    assert load_checkpoint(epoch).progress.best["file"] == "best-epoch-002.safetensors"
