"""Shared fixtures: the real images in ../shared/data (never copied into the repository), and the
`slow` mark on every test that runs Ray end to end (`pytest -m "not slow"` leaves them out; a few
that start a server or several processes, or run the shortcut check on all of PBC, carry it
too)."""

from __future__ import annotations

import fcntl
import gc
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raycells.data.index import index_dataset
from raycells.data.manifest import Manifest, read_manifest, write_manifest
from raycells.runs.rundir import RunDir, write_plan
from raycells.train.trainer import set_ray_environment

# Resolved: indexing resolves image paths, so a ../shared reached through a link must compare equal.
SHARED_DATA = (Path(__file__).resolve().parents[2] / "shared" / "data").resolve()
RAY_FIXTURES = {"ray_session", "aml_run", "pbc_run"}
"""Fixtures that start Ray: a test using one is an end-to-end test, marked slow."""


def pytest_collection_modifyitems(items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items[:] = _dealt(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1)))


def pytest_collection_finish(session):
    _freeze_survivors()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    _freeze_survivors()


def _freeze_survivors() -> None:
    """Collect the garbage, then set what survives (the libraries the tests imported, session
    fixtures) aside from Python's garbage collector: its full passes over a test process's
    400,000 to 1,000,000 objects otherwise take seconds, and more at the process's exit.
    After each test, the pass goes over what the test made and left; only objects alive now
    and dropped in a reference cycle later are never freed (`make quick`: ~10 % less CPU)."""
    gc.collect()
    gc.freeze()


def _dealt(items: list, hands: int) -> list:
    """The tests dealt round-robin into one hand per test process, each hand in one piece: the
    Makefile's `--dist worksteal` gives each process an equal piece of the list in order, and
    later moves tests from the end of a busy process's queue to an idle one. In each hand, the
    tests that need Ray stopped come first (so that the shared cluster, SharedRay, starts once
    per process), then the slow ones, shared between the processes, then the short ones, which
    move to whichever process finishes first, so that both end together."""
    ordered = sorted(items, key=lambda item: ("no_ray" not in getattr(item, "fixturenames", ()),
                                              item.get_closest_marker("slow") is None))
    return [item for hand in range(hands) for item in ordered[hand::hands]]


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need the real images in ../shared/data beside "
                    "the repository checkout.")
    return path


@pytest.fixture(scope="session")
def pbc_dir(tmp_path_factory) -> Path:
    """PBC's folder, indexed once per test session before any test reads it, by the first test
    process to ask (the others wait): its 8,561 images' facts are then in the session's cache,
    and every later index of PBC, by a test or a command it runs, reads them from there."""
    path = _shared("pbc")
    _once(tmp_path_factory, "pbc.parquet", lambda out: write_manifest(index_dataset(path), out))
    return path


@pytest.fixture(scope="session")
def matek_dir() -> Path:
    return _shared("matek-samples/AML-Cytomorphology_LMU")


@pytest.fixture(scope="session")
def pbc_manifest(pbc_dir, tmp_path_factory) -> Manifest:
    """PBC's manifest, as `pbc_dir` wrote it."""
    return read_manifest(_session_root(tmp_path_factory) / "pbc.parquet")


def _session_root(tmp_path_factory) -> Path:
    """The test session's temporary folder: with pytest-xdist, the one every worker process's own
    folder sits in, so that the workers share what is built once per session."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(tmp_path_factory, name: str, build) -> Path:
    """`session root`/`name`, made by `build(path)` once per test session: the first process to
    ask builds it while the others (pytest-xdist workers) wait, then all read it. One whose
    build was cut short is built again."""
    path = _session_root(tmp_path_factory) / name
    with open(path.with_name(f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = path.with_name(f"{name}.done")
        if not done.exists():
            if path.is_dir():
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Generated and cached data goes to the session's temporary folder (shared by the test
    processes), never ~/.cache: set for the whole session, so that the session's own fixtures
    (indexing PBC, training the shared runs) write there too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYCELLS_CACHE", str(_session_root(tmp_path_factory) / "cache"))
        yield


@pytest.fixture
def prediction_run():
    """Build a run directory over the classes MOB, MYO, NGS whose fold k holds the given
    predictions [(label, [p_MOB, p_MYO, p_NGS]), ...]: prediction_run(folder, {k: rows}, total,
    paper=True for a paper-preset run on the Munich AML images)."""
    classes = ["MOB", "MYO", "NGS"]

    def build(folder: Path, folds: dict[int, list[tuple[str, list[float]]]], total: int | None = None,
              paper: bool = False) -> Path:
        run = RunDir(folder / "run")
        run.path.mkdir(parents=True)
        config = {"data": {"classes": classes}, "settings": {"experiment": {"folds": total or len(folds)}}}
        if paper:
            config = {**config, "preset": "paper", "data": {**config["data"], "layout": "tcia-aml"}}
        run.config.write_text(json.dumps(config))
        plan_rows = []
        for k, rows in folds.items():
            frame = pd.DataFrame({"path": [f"/f{k}/{i}.png" for i in range(len(rows))],
                                  "label": [label for label, _ in rows]})
            probs = np.array([p for _, p in rows])
            frame["predicted"] = np.asarray(classes)[probs.argmax(1)]
            for i, code in enumerate(classes):
                frame[f"prob_{code}"] = probs[:, i]
            run.fold(k).mkdir()
            frame.to_parquet(run.fold(k) / "predictions.parquet")
            plan_rows += [(path, label, k) for path, label in zip(frame["path"], frame["label"])]
        write_plan(pd.DataFrame(plan_rows, columns=["path", "label", "fold"]), run.folds)
        return run.path

    return build


class SharedRay:
    """One Ray cluster for every test that needs one (starting Ray costs seconds of both cores),
    started by the first such test and stopped when the session ends; a test that needs Ray
    stopped (it starts a cluster of its own, or makes Ray fail to start) takes `no_ray`, and
    those tests run first so that the shared cluster starts once."""

    address: str | None = None

    @classmethod
    def ensure(cls) -> None:
        import ray

        if ray.is_initialized():
            if cls.address != ray.get_runtime_context().gcs_address:
                pytest.fail("Ray is running but not as the tests' shared cluster: a test started "
                            "its own and left it running.")
            return
        set_ray_environment()  # as raycells.train.trainer.init_ray does
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        cls.address = ray.get_runtime_context().gcs_address

    @classmethod
    def stop(cls) -> None:
        import ray

        cls.address = None
        if ray.is_initialized():
            ray.shutdown()

    @classmethod
    def foreign(cls) -> bool:
        """Whether Ray runs in this process as a cluster some test started and left running."""
        ray = sys.modules.get("ray")
        return ray is not None and ray.is_initialized() and (
            cls.address != ray.get_runtime_context().gcs_address)


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_ray():
    yield
    SharedRay.stop()


@pytest.fixture(scope="module", autouse=True)
def _no_ray_left_running(request):
    """A module that leaves a Ray of its own running (a CLI command run in-process starts one the
    test never stops) would hand it to the next module, whose tests then join it unawares: name
    the module and stop Ray, so only it fails."""
    yield
    if SharedRay.foreign():
        SharedRay.stop()
        pytest.fail(f"{request.module.__name__} left Ray running: give its tests that start Ray "
                    "the ray_session fixture.")


@pytest.fixture
def ray_session():
    """The tests' shared Ray cluster (2 CPUs), started if it is not running."""
    SharedRay.ensure()


@pytest.fixture
def ray_address(ray_session) -> str:
    """The shared cluster's address, for a command run in a process of its own to join with
    --address (as it would a lab's cluster) instead of starting a Ray of its own."""
    return SharedRay.address


@pytest.fixture
def no_ray():
    """Ray stopped in this process, for a test that starts a cluster of its own or makes Ray fail
    to start; such tests run before the rest."""
    SharedRay.stop()


@pytest.fixture
def complete_run():
    """A check that a run directory holds everything the contract promises, for every fold."""

    def check(run: Path, *, folds: int, classes: int) -> None:
        import torch

        config = json.loads((run / "config.json").read_text())
        assert config["settings"]["experiment"]["folds"] == folds
        assert {"torch", "ray", "kornia"} <= set(config["packages"]) and "seed" in config
        assert {"command_line", "python", "cuda", "gpus", "git_dirty"} <= set(config)
        assert len(config["data"]["fingerprint"]) == 40
        assert len(read_manifest(run / "manifest.parquet")) == len(pd.read_parquet(run / "folds.parquet"))
        for k in range(folds):
            fold = run / f"fold-{k}"
            history = pd.read_csv(fold / "history.csv")
            assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(history.columns)
            predictions = pd.read_parquet(fold / "predictions.parquet")
            probs = predictions.filter(like="prob_")
            assert probs.shape[1] == classes and ((probs.sum(axis=1) - 1).abs() < 1e-4).all()
            assert {"path", "label", "predicted"} <= set(predictions.columns)
            metrics = json.loads((fold / "metrics.json").read_text())
            assert metrics["images"] == len(predictions)
            first = probs.columns[0].removeprefix("prob_")
            # Every per-class metric of the registry, as score_fold writes them.
            assert set(metrics["per_class"][first]) == {"precision", "sensitivity", "f1", "roc_auc",
                                                        "support"}
            assert metrics["classes_scored"] <= metrics["classes"] == classes
            paths = list((fold / "checkpoint").glob("epoch-*/state.pt"))
            kept = [torch.load(path, weights_only=True) for path in paths
                    if path.stat().st_size > 1000]  # not one a test cut short
            assert kept and all("model" not in state["best"] for state in kept)
            # The fold's network once, beside the checkpoints: the files they name, no others.
            files = {path.name for path in (fold / "checkpoint").glob("best-*")}
            assert {state["best"]["file"] for state in kept} <= files and len(files) <= len(paths)

    return check


@pytest.fixture
def mlflow_runs():
    """Read a run directory's MLflow record with MLflow's own client, from the store its folder
    shares with the runs beside it: (client, its parent run(s), their fold runs)."""

    def read(run: Path):
        from mlflow.tracking import MlflowClient

        from raycells.runs.rundir import RunDir
        from raycells.runs.tracking import local_uri

        client = MlflowClient(tracking_uri=local_uri(RunDir(run)))
        found = client.search_runs([client.get_experiment_by_name("raycells").experiment_id])
        parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags
                   and r.data.tags.get("raycells.run_dir") == str(Path(run).resolve())]
        ids = {r.info.run_id for r in parents}
        return client, parents, [r for r in found if r.data.tags.get("mlflow.parentRunId") in ids]

    return read


@pytest.fixture(scope="session")
def small_pbc(pbc_manifest, tmp_path_factory) -> Path:
    """A manifest of 12 real images per PBC class."""
    frame = pbc_manifest.frame.groupby("label").head(12).reset_index(drop=True)
    return _once(tmp_path_factory, "small.parquet", lambda path: write_manifest(
        Manifest(frame=frame, root=pbc_manifest.root, layout="pbc", source="pbc"), path))


TRAINED_RUN = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "folds": 2, "epochs": 1,
               "lr": 0.01}
"""The settings of the tests' trained runs: a tiny CNN at 32x32, one epoch, two folds."""


@pytest.fixture(scope="session")
def aml_run(matek_dir, tmp_path_factory) -> Path:
    """A finished run (`TRAINED_RUN`) on the AML samples: 15 classes. Trained once per test
    session, on the shared Ray cluster."""
    from raycells.runs.cv import run_cv
    from raycells.settings import build_settings

    def build(out: Path) -> None:
        experiment, placement = build_settings(flags={**TRAINED_RUN, "data": str(matek_dir)})
        SharedRay.ensure()
        run_cv(out, experiment, placement, manifest=index_dataset(matek_dir))

    return _once(tmp_path_factory, "aml-run", build)


@pytest.fixture(scope="session")
def pbc_run(small_pbc, tmp_path_factory) -> Path:
    """A finished run (`TRAINED_RUN`) on `small_pbc`: 8 classes; the other PBC images never
    trained it. Trained once per test session by `raycells cv` as a user runs it, in a terminal
    80 columns wide, joining the shared Ray cluster with --address; what the terminal received
    is kept beside it (`pbc_run_screen`, checked by tests/cli/test_terminal.py)."""

    def build(out: Path) -> None:
        SharedRay.ensure()
        flags = [part for name, value in TRAINED_RUN.items()
                 for part in (f"--{name.replace('_', '-')}", str(value))]
        code, shown = terminal_output(["cv", str(small_pbc), "--out", str(out), "--address",
                                       SharedRay.address, *flags], cwd=out.parent)
        out.with_name("pbc-run.screen").write_text(shown)
        assert code == 0 and "Traceback" not in shown, f"raycells cv exited {code}: {shown[-3000:]}"

    return _once(tmp_path_factory, "pbc-run", build)


@pytest.fixture(scope="session")
def pbc_run_screen(pbc_run) -> str:
    """What the terminal `pbc_run` was trained in received."""
    return pbc_run.with_name("pbc-run.screen").read_text()


@pytest.fixture
def screen():
    """screen(shown, columns=80): the problems `screen_problems` finds in what a terminal received."""
    return screen_problems


@pytest.fixture
def in_terminal():
    """Run a raycells command as a user does, in a pseudo-terminal of a given width: what a
    terminal shows (progress bars, live tables) is only drawn there, and only fails there.
    in_terminal(args, cwd=..., columns=80) -> (exit status, what the terminal received); what it
    received must fit the terminal (`screen_problems`), whatever the command did."""
    return run_in_terminal


def screen_problems(shown: str, columns: int = 80) -> list[str]:
    """The lines that run past the edge of a terminal `columns` wide, which the terminal would
    then cut wherever the edge falls, inside a word or a number (a line the command broke
    itself, between words, ends with its own newline and is never longer); and a "mean ± std"
    broken over two lines."""
    from rich.cells import cell_len

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", shown)
    lines = re.split(r"\r\n|\n|\r", text)
    return [f"{cell_len(line)} columns: {line!r}" for line in lines if cell_len(line) > columns] + [
        f"a mean ± std split: {line!r}" for line in lines if re.search(r"±\s*$|^\s*±", line)]


def run_in_terminal(args: list[str], *, cwd: Path, columns: int = 80,
                    timeout: float = 600) -> tuple[int, str]:
    """`terminal_output`, failing if the screen has `screen_problems`."""
    code, shown = terminal_output(args, cwd=cwd, columns=columns, timeout=timeout)
    problems = screen_problems(shown, columns)
    assert problems == [], f"raycells {' '.join(args)}: the screen at {columns} columns: {problems}"
    return code, shown


def terminal_output(args: list[str], *, cwd: Path, columns: int = 80,
                    timeout: float = 600) -> tuple[int, str]:
    """(exit status, everything the terminal received) of `python -m raycells.cli.main ARGS`
    with its stdin, stdout and stderr on a pseudo-terminal `columns` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "raycells.cli.main", *args], cwd=cwd,
                               stdin=slave, stdout=slave, stderr=slave, env=env,
                               start_new_session=True)
    os.close(slave)
    received, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise TimeoutError(f"raycells {' '.join(args)} ran over {timeout} s in a terminal")
        return process.wait(timeout=60), received.decode(errors="replace")
    finally:
        os.close(master)
